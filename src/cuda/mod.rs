//! CUDA backend: pinned and managed ring memory, NVRTC-compiled producer kernels.
