using LoQT.Data;

namespace LoQT.Tests.Data;

public class ArithmeticCorpusTests
{
    [Fact]
    public void HeldOutProblems_NeverOccurInTraining()
    {
        var corpus = ArithmeticCorpus.Generate(operandBound: 30, heldOutFraction: 0.1, seed: 7);
        var train = corpus.Train.Select(p => p.Prompt).ToHashSet();
        Assert.NotEmpty(corpus.HeldOut);
        Assert.DoesNotContain(corpus.HeldOut, p => train.Contains(p.Prompt));
        Assert.Equal(30 * 30 * 2, corpus.Train.Count + corpus.HeldOut.Count);
    }

    [Fact]
    public void Generate_IsDeterministicForASeed()
    {
        var a = ArithmeticCorpus.Generate(20, 0.2, seed: 3);
        var b = ArithmeticCorpus.Generate(20, 0.2, seed: 3);
        Assert.Equal(a.HeldOut, b.HeldOut);
    }

    [Theory]
    [InlineData(12, '+', 35, "12+35=47")]
    [InlineData(3, '-', 9, "3-9=-6")]
    public void Problem_TextIsPromptThenAnswer(int left, char op, int right, string expected) =>
        Assert.Equal(expected, new ArithmeticProblem(left, op, right).Text);

    [Fact]
    public async Task CompletionJsonl_HoldsEachSplitAsPromptCompletionRecordsInOrder()
    {
        var corpus = ArithmeticCorpus.Generate(operandBound: 10, heldOutFraction: 0.2, seed: 1);
        var dir = Directory.CreateTempSubdirectory("loqt-arith-").FullName;
        try
        {
            var (train, valid) = corpus.WriteCompletionJsonl(dir);
            foreach (var (file, problems) in new[] { (train, corpus.Train), (valid, corpus.HeldOut) })
            {
                var records = File.ReadAllLines(file).Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToArray();
                Assert.Equal(problems.Select(p => (p.Prompt, p.Answer)),
                    records.Select(r => (r.GetProperty("prompt").GetString()!, r.GetProperty("completion").GetString()!)));
            }

            ArithmeticCorpus.WriteCharacterTokenizer(dir);
            var dataset = await TokenDataset.LoadAsync(valid, TokenizerLoader.FromDirectory(dir), new TokenDatasetOptions { SequenceLength = 16, Pack = false });
            Assert.Equal(DatasetRecordKind.PromptCompletion, dataset.Kind);
            Assert.Equal(corpus.HeldOut.Count, dataset.Count);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void CharacterTokenizer_EncodesOneIdPerCharacterAndDecodesBack()
    {
        var dir = Directory.CreateTempSubdirectory("loqt-arith-").FullName;
        try
        {
            ArithmeticCorpus.WriteCharacterTokenizer(dir);
            var tokenizer = TokenizerLoader.FromDirectory(dir);
            var ids = tokenizer.Encode("12+35=47");
            Assert.Equal(8, ids.Count);
            Assert.Equal("12+35=47", tokenizer.Decode(ids));
            Assert.Equal(1, tokenizer.BosTokenId);
            Assert.Equal(2, tokenizer.EosTokenId);
            Assert.Equal([1, .. ids], tokenizer.Encode("12+35=47", addSpecialTokens: true));
            Assert.Equal(ArithmeticCorpus.CharacterVocabularySize, tokenizer.VocabularySize);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
