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
