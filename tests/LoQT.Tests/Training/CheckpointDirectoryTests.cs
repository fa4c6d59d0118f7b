using LoQT.Training;

namespace LoQT.Tests.Training;

public sealed class CheckpointDirectoryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("loqt-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void WriteState(string folder, string text) =>
        File.WriteAllText(Path.Combine(folder, CheckpointDirectory.TrainerStateFileName), text);

    [Fact]
    public void Save_ThenResolveOutputDirectory_GivesTheNewestCheckpoint()
    {
        CheckpointDirectory.Save(_dir, 10, f => WriteState(f, "10"));
        var newest = CheckpointDirectory.Save(_dir, 20, f => WriteState(f, "20"));
        Assert.Equal(newest, CheckpointDirectory.Resolve(_dir));
        Assert.Equal("20", File.ReadAllText(Path.Combine(newest, CheckpointDirectory.TrainerStateFileName)));
    }

    [Fact]
    public void Save_KeepsOnlyTheRequestedNumberOfCheckpoints()
    {
        for (var step = 1; step <= 4; step++)
        {
            CheckpointDirectory.Save(_dir, step, f => WriteState(f, "x"), keep: 2);
        }

        Assert.Equal(["checkpoint-0000003", "checkpoint-0000004"],
            Directory.GetDirectories(_dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Save_ThatFails_LeavesThePreviousCheckpointCurrentAndNoTemporaryFolder()
    {
        var good = CheckpointDirectory.Save(_dir, 5, f => WriteState(f, "5"));
        Assert.Throws<IOException>(() => CheckpointDirectory.Save(_dir, 6, f =>
        {
            File.WriteAllText(Path.Combine(f, "model.safetensors"), "half");
            throw new IOException("disk full");
        }));

        Assert.Equal(good, CheckpointDirectory.Resolve(_dir));
        Assert.Equal([Path.GetFileName(good)], Directory.GetDirectories(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void Save_RequiresTheTrainerStateFile()
    {
        Assert.Throws<InvalidOperationException>(() => CheckpointDirectory.Save(_dir, 1, f => File.WriteAllText(Path.Combine(f, "a"), "")));
        Assert.Null(CheckpointDirectory.Resolve(_dir));
    }

    [Fact]
    public void Resolve_OfAPlainModelDirectory_IsNull() => Assert.Null(CheckpointDirectory.Resolve(_dir));

    [Fact]
    public void Resolve_OfACheckpointFolder_IsThatFolder()
    {
        var c = CheckpointDirectory.Save(_dir, 3, f => WriteState(f, "3"));
        Assert.Equal(c, CheckpointDirectory.Resolve(c));
    }
}
