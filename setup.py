"""Installation of pmsplat: the adapter package (src/pmsplat) and the vendored baselines (baselines/).

CPU-only machines should install torch==2.13.0 first (``make setup`` does it) so that pip does not
pull a multi-GB CUDA build of torch as a dependency of the packages below.
"""

from setuptools import setup

BASELINE_PACKAGES = ["splatcore", "mvsplat", "depthsplat"]


def _find(root: str, top: str) -> list[str]:
    from setuptools import find_packages

    return [top] + [f"{top}.{sub}" for sub in find_packages(f"{root}/{top}")]


packages = _find("src", "pmsplat")
package_dir = {"pmsplat": "src/pmsplat"}
for name in BASELINE_PACKAGES:
    packages += _find("baselines", name)
    package_dir[name] = f"baselines/{name}"

setup(
    name="pmsplat",
    version="0.1.0",
    description="PM-Loss (pointmap-guided Chamfer loss) for feed-forward 3D Gaussian Splatting: "
    "vendored MVSplat/DepthSplat, a thin adapter, and a patch manager.",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    include_package_data=True,
    install_requires=[
        "torch>=2.1",
        "jaxtyping>=0.2.28",
        "beartype>=0.18",
        "lightning>=2.2",
        "hydra-core>=1.3",
        "scikit-image>=0.22",
        "einops>=0.7",
        "numpy",
        "scipy>=1.10",
        # the fast exact CPU kNN engine of PM-Loss (pmsplat.knn "pykdtree"; cKDTree is the fallback)
        "pykdtree>=1.3",
        "safetensors",
        "rich",
        "pillow",
        "matplotlib",
        "e3nn>=0.5",
        "dacite",
        # `pmsplat patches`: parses the patch series (applying and generating is done by git)
        "unidiff>=0.7",
    ],
    extras_require={
        # Pointmap teachers; each is optional and its adapter says how to install it when missing.
        # (DUSt3R is not pip-installable: a recursive git clone + teacher.repo, see the README.)
        "vggt": ["huggingface_hub"],
        # depth-anything-3 0.1.1 imports addict without declaring it
        "da3": ["depth-anything-3", "addict"],
        # gsplat and xformers are test dependencies too: their pure-torch references run on CPU and
        # check the CUDA paths there (pinned: gsplat's private reference names change between versions)
        "dev": ["pytest>=8", "pytest-xdist", "pytest-benchmark", "hypothesis", "import-linter>=2.17",
                "gsplat==1.5.3", "xformers==0.0.35"],
        # CUDA-only kernels (`make setup` adds this extra where nvidia-smi finds a GPU): the gsplat
        # rasteriser (JIT-built on first use; needs nvcc) and xformers attention. The code imports
        # both lazily and falls back to the torch rasteriser / SDPA without them.
        "gpu": ["gsplat==1.5.3", "xformers"],
    },
    entry_points={"console_scripts": ["pmsplat=pmsplat.cli:main"]},
)
