"""On a Colab GPU, EGL reaches NVIDIA's driver only through glvnd's vendor file: envs writes it there
(under a temporary root here, with Colab and the GPU faked), and never anywhere else."""
import json
import subprocess
import sys

import pytest

from mbc_lib.envs import _gl

VENDOR = "usr/share/glvnd/egl_vendor.d/10_nvidia.json"


def test_colab_gpu_gets_nvidias_egl_vendor_file(tmp_path):
    vendor, note = _gl.nvidia_egl_vendor_file(tmp_path, colab=True, nvidia=True)
    path = tmp_path / VENDOR
    assert vendor == "nvidia" and "wrote" in note and str(path) in note
    assert json.loads(path.read_text()) == {"file_format_version": "1.0.0",
                                            "ICD": {"library_path": "libEGL_nvidia.so.0"}}
    # a second call leaves the file as it is and still reports the GPU
    path.write_text("{}")
    assert _gl.nvidia_egl_vendor_file(tmp_path, colab=True, nvidia=True)[0] == "nvidia"
    assert path.read_text() == "{}"


@pytest.mark.parametrize("colab, nvidia", [(False, True), (True, False), (False, False)])
def test_no_vendor_file_outside_a_colab_gpu(tmp_path, colab, nvidia):
    vendor, note = _gl.nvidia_egl_vendor_file(tmp_path, colab=colab, nvidia=nvidia)
    assert vendor == "mesa" and not (tmp_path / VENDOR).exists()
    assert ("no NVIDIA EGL library" in note) if not nvidia else ("leaves system files alone" in note)


def test_an_unwritable_root_falls_back_to_mesa(tmp_path):
    blocker = tmp_path / "usr"
    blocker.write_text("a regular file where a folder should be")
    vendor, note = _gl.nvidia_egl_vendor_file(tmp_path, colab=True, nvidia=True)
    assert vendor == "mesa" and "could not write" in note


def test_doctor_says_whose_egl_renders():
    code = ("import os; os.environ['MUJOCO_GL'] = 'egl'\n"
            "from mbc_lib import envs\n"
            "d = envs.doctor()\n"
            "print(d.ok, d.egl_vendor, '|', d.message)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    ok, vendor, _, message = out.split(" ", 3)
    if ok != "True":
        pytest.skip("MuJoCo cannot render with EGL on this machine")
    assert vendor in ("mesa", "nvidia") and ("Mesa" in message or "GPU" in message)
