namespace LoQT.Training;

/// <summary>Where training runs, which decides what the memory budget is measured against.</summary>
public enum DeviceKind
{
    /// <summary><c>cpu</c>: tensors live in host memory; the budget is the process's peak resident set.</summary>
    Cpu,

    /// <summary><c>cuda</c>: tensors live in GPU memory; the budget is the GPU's memory.</summary>
    Cuda,
}
