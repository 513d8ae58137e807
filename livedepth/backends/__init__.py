"""Inference backends: one network forward, ``(1, 3, h, w)`` float32 in, ``(h, w)`` float32 out.

A backend runs any :class:`~livedepth.backends.base.Network` (a model's loaded torch module,
built on demand, and its export form); it knows no model.

- ``base``: the ``Backend`` protocol, the ``Network`` it runs, backend names and availability;
- ``torch``: the network's runtime form (MiDaS: BN folded), channels_last, traced and frozen per
  input size (fp32, faithful);
- ``export``: the ONNX export, cached next to the weights per model, weights, graph version and
  input size;
- ``ort``: ONNX Runtime on the exported model (fp32, faithful; extra ``livedepth[onnx]``);
- ``openvino``: OpenVINO on the same exported model, pinned to fp32 (extra ``livedepth[openvino]``);
- ``int8``: a statically quantized copy calibrated on frames; opt-in, not faithful; it checks
  itself against fp32 at start-up;
- ``bf16``: OpenVINO at bf16 precision on the exported model, where the CPU has bf16 arithmetic;
  opt-in, not faithful; it checks itself against fp32 at start-up;
- ``create``: a backend by name;
- ``auto``: the fastest installed faithful fp32 backend, measured once per model, machine and
  setting, and cached;
- ``system``: the CPU model and flags, package versions and available cores.
"""
