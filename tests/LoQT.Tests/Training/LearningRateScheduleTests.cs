using LoQT.Training;

namespace LoQT.Tests.Training;

/// <summary>
/// Learning rates against values worked out by hand from the reference's schedules (peft_pretraining/training_utils.py:
/// warmup step/W, then min + (1 − min)·decay with cosine decay ½(1 + cos(π·progress)), progress = (step − W)/(N − W)).
/// </summary>
public sealed class LearningRateScheduleTests
{
    private const double Peak = 0.01;

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(5, 0.005)] // half-way through warmup
    [InlineData(10, 0.01)] // warmup done: the peak
    [InlineData(35, 0.0086819805153394639)] // progress 1/4: 0.1 + 0.9·½(1 + cos(π/4)) = 0.1 + 0.45·1.7071068 = 0.8681981
    [InlineData(60, 0.0055)] // progress 1/2: 0.1 + 0.9·½ = 0.55
    [InlineData(110, 0.001)] // the end: min ratio 0.1
    [InlineData(500, 0.001)] // past the end: stays at the minimum
    public void Cosine_WithWarmupAndTheReferencesMinimumOfOneTenth(long step, double expected)
    {
        var schedule = new LearningRateSchedule(LearningRateScheduleKind.Cosine, Peak, warmupSteps: 10, totalSteps: 110);
        Assert.Equal(expected, schedule.At(step), 1e-12);
    }

    [Theory]
    [InlineData(2, 0.005)]
    [InlineData(4, 0.01)]
    [InlineData(54, 0.005)] // half-way from the peak to zero
    [InlineData(104, 0.0)]
    public void Linear_WithWarmupDecaysToZero(long step, double expected)
    {
        var schedule = new LearningRateSchedule(LearningRateScheduleKind.Linear, Peak, warmupSteps: 4, totalSteps: 104);
        Assert.Equal(expected, schedule.At(step), 1e-12);
    }

    [Theory]
    [InlineData(0, 0.0)]
    [InlineData(1, 0.0025)] // warmup of 4: step/4 of the peak
    [InlineData(3, 0.0075)]
    [InlineData(4, 0.01)]
    [InlineData(100_000, 0.01)]
    public void Constant_IsThePeakAfterWarmup(long step, double expected)
    {
        var schedule = new LearningRateSchedule(LearningRateScheduleKind.Constant, Peak, warmupSteps: 4);
        Assert.Equal(expected, schedule.At(step), 1e-12);
        Assert.Equal(Peak, new LearningRateSchedule(LearningRateScheduleKind.Constant, Peak).At(step), 1e-12);
    }

    [Fact]
    public void MinimumRatio_CanBeChosen()
    {
        var schedule = new LearningRateSchedule(LearningRateScheduleKind.Cosine, Peak, warmupSteps: 0, totalSteps: 10, minLearningRateRatio: 0);
        Assert.Equal(Peak, schedule.At(0), 1e-12);
        Assert.Equal(0.0, schedule.At(10), 1e-12);
    }

    [Theory]
    [InlineData(-1.0, 0, 10, "lr")]
    [InlineData(0.01, -1, 10, "warmup")]
    [InlineData(0.01, 20, 10, "warmup")]
    [InlineData(0.01, 0, 0, "steps")]
    public void OutOfRangeSettings_AreRejectedNamingTheOption(double peak, long warmup, long total, string option)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateSchedule(LearningRateScheduleKind.Cosine, peak, warmup, total));
        Assert.Equal(option, error.ParamName);
    }
}
