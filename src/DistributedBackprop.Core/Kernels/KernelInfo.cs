using System.Runtime.Intrinsics;

namespace DistributedBackprop.Core.Kernels;

/// <summary>Names the kernel path in use, for summaries (nodes must not mix kernels silently).</summary>
public static class KernelInfo
{
    public static string Name { get; } = Vector512.IsHardwareAccelerated ? "managed-vector512-fma"
        : Vector256.IsHardwareAccelerated ? "managed-vector256-fma"
        : "managed-scalar-fma";
}
