using System.Runtime.CompilerServices;
using LoQT.Native;

namespace LoQT.Tests.Support;

internal static class TorchSetup
{
    // Tests create tensors before touching any library type, so load libtorch the way the library would, first.
    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "Test assembly start-up.")]
    internal static void LoadLibTorch() => LibTorch.EnsureLoaded();
}
