"""The teacher registry: every registered name builds (or names the pip command that is missing),
options are checked against the teacher's dataclass, identities are canonical (defaults filled
in, device ignored, any option change visible), and dict / dataclass / OmegaConf configs agree."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from pmsplat.errors import InputError, MissingDependencyError
from pmsplat.synthetic import SynthConfig, generate, synthetic_dataset_cfg
from pmsplat.synthetic.evaluation_index import EvaluationIndexLayout
from pmsplat.teachers.cache_build import CacheBuildCfg, precompute
from pmsplat.teachers import cache_store as store
from pmsplat.teachers.registry import (
    TEACHERS,
    available_teachers,
    build_teacher,
    needs_pointmap,
    teacher_config,
    teacher_identity,
)
from pmsplat.teachers.synthetic import SyntheticTeacher, SyntheticTeacherCfg
from testkit import REPO_ROOT

PACKAGES = {"vggt": "vggt", "dust3r": "dust3r", "da3": "depth_anything_3"}


def test_every_documented_teacher_is_registered():
    assert available_teachers() == ["cache", "da3", "dust3r", "synthetic", "tensor", "vggt"]


def test_synthetic_builds_with_options_cast_from_yaml_types():
    teacher = build_teacher({"name": "synthetic", "noise_std": 0.01, "scale_range": [1.0, 1.5], "seed": 7})
    assert isinstance(teacher, SyntheticTeacher)
    assert teacher.cfg == SyntheticTeacherCfg(noise_std=0.01, scale_range=(1.0, 1.5), seed=7)
    assert needs_pointmap({"name": "synthetic"}) and not needs_pointmap({"name": "vggt"})


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_real_teachers_without_their_package_name_the_pip_command(name):
    if importlib.util.find_spec(PACKAGES[name]) is not None:
        pytest.skip(f"{PACKAGES[name]} is installed here")
    with pytest.raises(MissingDependencyError) as error:
        build_teacher({"name": name})
    assert TEACHERS[name].install in str(error.value)
    assert error.value.pip_command == TEACHERS[name].install


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_real_teachers_build_around_a_given_model_frozen(name):
    teacher = build_teacher({"name": name, "device": "cpu"}, model=TinyNet())
    assert type(teacher).__name__ == TEACHERS[name].class_name
    assert not teacher.model.training
    assert all(not p.requires_grad for p in teacher.model.parameters())
    assert teacher.patch_size == {"vggt": 14, "dust3r": 16, "da3": 14}[name]


def test_vggt_options_reach_the_adapter():
    teacher = build_teacher({"name": "vggt", "points_from": "depth_and_cameras", "dtype": "float32", "device": "cpu"}, model=TinyNet())
    assert teacher.cfg.points_from == "depth_and_cameras" and teacher.dtype == torch.float32


def test_unknown_names_and_options_are_clear_errors():
    with pytest.raises(InputError, match=r"Unknown teacher 'vggt2'.*\['cache', 'da3', 'dust3r', 'synthetic', 'tensor', 'vggt'\]"):
        build_teacher({"name": "vggt2"})
    with pytest.raises(InputError, match="has no 'name'"):
        build_teacher({"noise_std": 0.1})
    with pytest.raises(InputError, match=r"Unknown option\(s\) \['noise'\] for teacher 'synthetic'; valid options: .*'noise_std'"):
        build_teacher({"name": "synthetic", "noise": 0.1})
    with pytest.raises(InputError, match="Invalid options for teacher 'synthetic'"):
        build_teacher({"name": "synthetic", "seed": "zero"})
    with pytest.raises(InputError, match="must be a mapping"):
        build_teacher("vggt")


def test_identity_is_canonical():
    base = teacher_identity({"name": "synthetic"})
    assert base["name"] == "synthetic"
    assert base["options"]["noise_std"] == SyntheticTeacherCfg().noise_std  # defaults filled in
    assert teacher_identity({"name": "synthetic", "noise_std": SyntheticTeacherCfg().noise_std}) == base
    assert teacher_identity(SyntheticTeacherCfg()) == base  # a dataclass config
    changed = teacher_identity({"name": "synthetic", "distortion": 0.05})
    assert store.describe_differences(base, changed) == ["options.distortion: cache has 0.05, expected 0.02"]
    vggt = teacher_identity({"name": "vggt", "device": "cuda:1"})
    assert "device" not in vggt["options"] and vggt == teacher_identity({"name": "vggt"})
    assert teacher_identity({"name": "vggt", "points_from": "depth_and_cameras"}) != vggt


def test_omegaconf_configs_are_accepted():
    cfg = OmegaConf.create({"name": "synthetic", "scale_range": [0.8, 1.2]})
    name, instance = teacher_config(cfg)
    assert name == "synthetic" and instance.scale_range == (0.8, 1.2)


def test_tensor_teacher_builds_with_its_tensors():
    points = torch.randn(1, 2, 4, 4, 3)
    teacher = build_teacher({"name": "tensor", "patch_size": 2}, points=points)
    assert teacher.patch_size == 2
    assert torch.equal(teacher(torch.rand(1, 2, 3, 4, 4)).points, points)


def test_cache_builds_from_its_path_and_reports_a_missing_cache(tmp_path):
    from pmsplat.errors import DataError

    with pytest.raises(DataError, match="does not exist. Build it with `pmsplat teacher precompute"):
        build_teacher({"name": "cache", "path": str(tmp_path / "none")})


CONFIG_DIR = REPO_ROOT / "config" / "teacher"


@pytest.mark.parametrize("name", ["cache", "da3", "dust3r", "synthetic", "vggt"])
def test_hydra_teacher_group_configs_build(name, tmp_path):
    """Each config/teacher/<name>.yaml, as the training adapter passes it (a shallow dict of an
    OmegaConf node, nested values still DictConfig), is a valid registry config."""
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not present in this tree")
    node = OmegaConf.load(path)
    components = {}
    if name in PACKAGES:
        node.device = "cpu"
        components["model"] = TinyNet()
    if name == "cache":
        layout = EvaluationIndexLayout(interpolation_gap=(4, 8), interpolation_targets=2, extrapolation_gap=6,
                                       extrapolation_window=4, extrapolation_targets_per_side=2)
        generate(SynthConfig(out=tmp_path / "data", train_scenes=1, test_scenes=1, frames=16, height=8, width=8,
                             supersample=1, index_layout=layout))
        precompute(CacheBuildCfg(out=tmp_path / "cache", dataset=synthetic_dataset_cfg(tmp_path / "data"),
                                 teacher=dict(OmegaConf.load(CONFIG_DIR / "synthetic.yaml"))))
        node.path = str(tmp_path / "cache")
        node.teacher = OmegaConf.load(CONFIG_DIR / "synthetic.yaml")
        node.dataset_roots = [str(tmp_path / "data")]
    teacher = build_teacher(dict(node), **components)
    assert type(teacher).__name__ == TEACHERS[name].class_name
    # the YAML spells out the defaults: identity equals the bare name's
    if name != "cache":
        assert teacher_identity(dict(node)) == teacher_identity({"name": name})


def test_teacher_list_and_check_take_their_names_and_install_lines_from_the_registry(capsys):
    from pmsplat.cli import build_parser, main

    assert main(["teacher", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[: len(TEACHERS)]] == available_teachers()
    for name in available_teachers():
        assert any(line.startswith(name) and TEACHERS[name].install in line for line in lines)
    parser = build_parser(only="teacher")
    teacher = next(a for a in parser._subparsers._group_actions[0].choices["teacher"]._subparsers._group_actions)
    check = teacher.choices["check"]
    name_action = next(a for a in check._actions if a.dest == "name")
    assert list(name_action.choices) == available_teachers()


def test_dust3r_install_line_is_the_clone_route_and_the_da3_extra_has_addict():
    import ast

    assert TEACHERS["dust3r"].install.startswith("git clone --recursive https://github.com/naver/dust3r")
    assert "teacher.repo=" in TEACHERS["dust3r"].install and "pip install \"dust3r" not in TEACHERS["dust3r"].install
    setup = (REPO_ROOT / "setup.py").read_text()
    call = next(node for node in ast.walk(ast.parse(setup)) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup")
    extras = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "extras_require"))
    assert set(extras["da3"]) >= {"depth-anything-3", "addict"}
    assert "addict" in TEACHERS["da3"].install


def test_dust3r_identity_ignores_where_it_is_installed_but_not_what_it_computes():
    base = teacher_identity({"name": "dust3r"})
    assert teacher_identity({"name": "dust3r", "repo": "/opt/dust3r", "progress": False, "device": "cuda"}) == base
    assert teacher_identity({"name": "dust3r", "pair_window": 4}) != base
    assert teacher_identity({"name": "dust3r", "max_pairs": 100}) != base
    assert teacher_identity({"name": "da3", "process_res": 280}) != teacher_identity({"name": "da3"})


TOY_TEACHER = '''
"""A test-only teacher: the registry decorator is all it needs."""
from dataclasses import dataclass

import torch

from pmsplat.teachers.base import TeacherOutput
from pmsplat.teachers.registry import register_teacher


@dataclass
class ToyTeacherCfg:
    scale: float = 1.0


@register_teacher("toy", ToyTeacherCfg, install="nothing to install (test teacher)")
class ToyTeacher:
    patch_size = 1

    def __init__(self, cfg):
        self.cfg = cfg

    def __call__(self, images, context=None):
        b, v, _, h, w = images.shape
        return TeacherOutput(torch.ones(b, v, h, w, 3) * self.cfg.scale)
'''


def test_a_new_teacher_is_one_module_and_one_yaml(tmp_path, monkeypatch):
    """A teacher module registered with the decorator plus config/teacher/<name>.yaml (whose
    ``module:`` key says where the module is, as it lives outside src/pmsplat/teachers/) is picked up
    by the registry, the CLI choices and the Hydra tree without editing any other file."""
    import shutil

    import pmsplat.teachers.registry as registry
    from pmsplat.cli import build_parser
    from pmsplat.reproduce.protocol import teachers
    from splatcore.config_dir import DEFAULT_CONFIG_DIR
    from splatcore.main import compose_config, typed_config

    monkeypatch.setattr(registry, "TEACHERS", dict(registry.TEACHERS))
    monkeypatch.setattr(registry, "_SCANNED_DIRS", set())
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "toy_teacher_module.py").write_text(TOY_TEACHER)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    (config / "teacher" / "toy.yaml").write_text("name: toy\nmodule: toy_teacher_module\nscale: 2.0\n")
    monkeypatch.setenv("PMSPLAT_CONFIG_DIR", str(config))

    assert "toy" in available_teachers() and "toy" in teachers()
    assert registry.TEACHERS["toy"].install == "nothing to install (test teacher)"
    parser = build_parser(only="teacher")
    teacher = next(a for a in parser._subparsers._group_actions[0].choices["teacher"]._subparsers._group_actions)
    name_action = next(a for a in teacher.choices["check"]._actions if a.dest == "name")
    assert "toy" in list(name_action.choices)
    built = build_teacher(OmegaConf.load(config / "teacher" / "toy.yaml"))
    assert type(built).__name__ == "ToyTeacher" and built.cfg.scale == 2.0
    run = typed_config(compose_config(["+experiment=pmloss_mvsplat_synthetic_cpu", "teacher=toy", "dataset.load_pointmap=false"]),
                       check_files=False)
    assert run.teacher.name == "toy" and run.teacher.options.scale == 2.0
