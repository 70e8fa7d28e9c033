"""The C++ loader's parts that need no TensorRT: its .npy reader and plan-version check,
compiled with the system C++ compiler and run on files numpy wrote. (The loader itself needs
TensorRT's headers: docs.)"""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CPP = Path(__file__).resolve().parents[2] / "cpp"
DRIVER = r"""
#include "npy.h"
#include <cstdio>
#include <cstring>
int main(int, char** argv) {
    try {
        NpyArray a = readNpy(argv[1]);
        std::printf("%s %zu", a.descr.c_str(), a.itemsize());
        for (auto d : a.shape) std::printf(" %lld", (long long) d);
        double sum = 0;
        for (int64_t i = 0; i < a.count(); ++i) {
            char const* p = a.data.data() + a.itemsize() * i;
            if (a.descr == "<i8") { long long v; std::memcpy(&v, p, 8); sum += v; }
            if (a.descr == "<f4") { float v; std::memcpy(&v, p, 4); sum += v; }
        }
        std::printf(" sum=%.3f\n", sum);
    } catch (std::exception const& e) { std::printf("error: %s\n", e.what()); return 2; }
    return 0;
}
"""


@pytest.fixture(scope="module")
def npy_reader(tmp_path_factory):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    tmp = tmp_path_factory.mktemp("cpp")
    (tmp / "driver.cpp").write_text(DRIVER)
    exe = tmp / "npy_dump"
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{CPP}",
                    str(tmp / "driver.cpp"), str(CPP / "npy.cpp"), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    return exe


def dump(exe, path):
    return subprocess.run([str(exe), str(path)], capture_output=True, text=True).stdout.strip()


def test_reads_what_numpy_writes(npy_reader, tmp_path):
    history = np.arange(16 * 20, dtype=np.int64).reshape(16, 20)
    np.save(tmp_path / "history.npy", history)
    assert dump(npy_reader, tmp_path / "history.npy") == f"<i8 8 16 20 sum={history.sum():.3f}"
    scores = np.linspace(-3, 1, 7, dtype=np.float32)
    np.save(tmp_path / "scores.npy", scores)
    assert dump(npy_reader, tmp_path / "scores.npy") == \
        f"<f4 4 7 sum={float(scores.astype(np.float64).sum()):.3f}"


def test_refuses_what_it_cannot_read(npy_reader, tmp_path):
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.ones((3, 2), np.int64)))
    assert "Fortran-ordered" in dump(npy_reader, tmp_path / "fortran.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    assert "not a .npy file" in dump(npy_reader, tmp_path / "text.npy")
    raw = (tmp_path / "history.npy")
    np.save(raw, np.zeros((4, 4), np.int64))
    raw.write_bytes(raw.read_bytes()[:-8])
    assert "file ends before its data does" in dump(npy_reader, raw)


VERSION_DRIVER = r"""
#include "plan_version.h"
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
int main(int argc, char** argv) {
    TrtVersion lib = decodeLibVersion(std::atoi(argv[1]));  // what getInferLibVersion() returns
    std::printf("library %s\n", versionText(lib).c_str());
    for (int i = 2; i < argc; ++i) {
        std::ifstream in(argv[i], std::ios::binary);
        std::vector<char> plan((std::istreambuf_iterator<char>(in)), {});
        try {
            std::string why = planVersionMismatch(plan, lib, argv[i]);
            std::printf("%s\n", why.empty() ? "ok" : why.c_str());
        } catch (std::exception const& e) { std::printf("error: %s\n", e.what()); }
    }
    return 0;
}
"""


def test_plan_version_is_checked_against_the_loaded_library(tmp_path):
    """The loader compares a plan's header with getInferLibVersion() (the libnvinfer actually
    loaded), decoded as major * 10000 + minor * 100 + patch; not with its compile-time macros."""
    import struct

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    (tmp_path / "driver.cpp").write_text(VERSION_DRIVER)
    exe = tmp_path / "plan_version"
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{CPP}",
                    str(tmp_path / "driver.cpp"), "-o", str(exe)], check=True,
                   capture_output=True, text=True)
    plan = tmp_path / "fp8.plan"
    plan.write_bytes(struct.pack("<II", 0x74727466, 0) + bytes(16) + bytes((10, 15, 1, 29)))
    other = tmp_path / "other.plan"
    other.write_bytes(struct.pack("<II", 0x74727466, 0) + bytes(16) + bytes((11, 4, 0, 106)))
    (tmp_path / "text.plan").write_text("not a plan at all, but long enough to have a header")
    lines = subprocess.run([str(exe), "101501", str(plan), str(other), str(tmp_path / "text.plan")],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0] == "library 10.15.1"
    assert lines[1] == "ok"
    assert "other.plan was built with TensorRT 11.4.0, the TensorRT library loaded here is " \
           "10.15.1" in lines[2]
    assert lines[3].startswith("error:") and "is not a TensorRT plan" in lines[3]
    source = (CPP / "onerec_trt_run.cpp").read_text()
    check = source[source.index("void checkPlanVersion"):]
    check = check[:check.index("\n}\n")]
    assert "getInferLibVersion()" in check and "planVersionMismatch" in check
