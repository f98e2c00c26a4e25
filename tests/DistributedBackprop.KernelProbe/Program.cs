using DistributedBackprop.Core.Kernels;
using DistributedBackprop.KernelProbe;

// Output, one "key=value" per line, parsed by KernelDeterminismTests.
Console.WriteLine($"path={Gemm.HardwarePath}");
Console.WriteLine($"sha256={KernelProbeCases.Hash()}");
