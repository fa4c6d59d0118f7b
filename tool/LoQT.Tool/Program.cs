using LoQT.Tool;

return await LoqtCli.RunAsync(args);
