"""The reproduction: the comparison protocol, its pipeline, evaluation, report and ablation."""
