using System.Text.Json.Nodes;
using LoQT.SafeTensors;
using TorchSharp;

namespace LoQT.Tests.Models.Llama;

/// <summary>A copy of a fixture checkpoint with some tensors dropped, replaced or added, and config.json edited, in a temporary folder.</summary>
internal sealed class EditedCheckpoint : IDisposable
{
    private EditedCheckpoint(string directory) => Directory = directory;

    public string Directory { get; }

    /// <summary>
    /// Copies <paramref name="source"/>: <paramref name="edit"/> sees each tensor (name, F32 copy) and returns what to write
    /// instead (nothing drops it); <paramref name="extra"/> adds tensors; <paramref name="config"/> edits config.json.
    /// </summary>
    public static EditedCheckpoint Create(
        string source,
        Func<string, torch.Tensor, IEnumerable<(string Name, torch.Tensor Tensor)>>? edit = null,
        IEnumerable<(string Name, torch.Tensor Tensor)>? extra = null,
        Action<JsonObject>? config = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "loqt-edited-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(directory);
        using (var checkpoint = SafeTensorsCheckpoint.Open(source))
        using (var writer = new SafeTensorsWriter(Path.Combine(directory, "model.safetensors"), new Dictionary<string, string> { ["format"] = "pt" }))
        {
            foreach (var name in checkpoint.TensorNames)
            {
                using var tensor = checkpoint.ReadTensor(name, torch.ScalarType.Float32);
                foreach (var (newName, newTensor) in edit?.Invoke(name, tensor) ?? [(name, tensor)])
                {
                    writer.Add(newName, newTensor);
                    if (!ReferenceEquals(newTensor, tensor))
                    {
                        newTensor.Dispose();
                    }
                }
            }

            foreach (var (name, tensor) in extra ?? [])
            {
                using (tensor)
                {
                    writer.Add(name, tensor);
                }
            }

            writer.Complete();
        }

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        json["torch_dtype"] = "float32";
        config?.Invoke(json);
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString());
        foreach (var file in new[] { "tokenizer.model", "tokenizer_config.json", "tokenizer.json" })
        {
            if (File.Exists(Path.Combine(source, file)))
            {
                File.Copy(Path.Combine(source, file), Path.Combine(directory, file));
            }
        }

        return new EditedCheckpoint(directory);
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}
