using LoQT.Native;
using LoQT.Tool;

// Training frees large tensors every step; let that memory leave the process (see NativeAllocator).
NativeAllocator.ReturnFreedMemoryToSystem();
return await LoqtCli.RunAsync(args);
