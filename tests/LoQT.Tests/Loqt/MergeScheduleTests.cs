using LoQT.Loqt;

namespace LoQT.Tests.Loqt;

/// <summary>
/// The merge schedule against the reference's <c>get_proj_update_steps</c> (sebulo/LoQT, loqt/utils.py), worked out by
/// hand here: steps = [0]; current = T; then while current ≤ N: append current and advance by
/// static: T; linear: gap += c, current += int(gap); exponential: k += 1, current += T + int(ψ^k).
/// </summary>
public sealed class MergeScheduleTests
{
    [Fact]
    public void Static_IsEveryT()
    {
        Assert.Equal([0L, 4, 8, 12], MergeSchedule.Static(4).StepsThrough(12));
    }

    [Fact]
    public void Linear_GrowsTheGapByTheIncrementAndTruncates()
    {
        // T = 10, c = 2.5: gaps 10, int(12.5) = 12, int(15) = 15, int(17.5) = 17, int(20) = 20.
        Assert.Equal([0L, 10, 22, 37, 54, 74], MergeSchedule.Linear(10, 2.5).StepsThrough(80));
    }

    [Fact]
    public void Exponential_AddsTPlusTheFloorOfPsiToTheK()
    {
        // T = 3, ψ = 2: gaps 3, 3 + 2, 3 + 4, 3 + 8, 3 + 16.
        Assert.Equal([0L, 3, 8, 15, 26, 45], MergeSchedule.Exponential(3, 2).StepsThrough(45));
    }

    [Fact]
    public void Exponential_WithThePapersSettings()
    {
        // T = 100, ψ = 1.2: int(1.2^k) for k = 1..8 is 1, 1, 1, 2, 2, 2, 3, 4 (1.2^8 = 4.30); 1.2^9 = 5.16 takes it past 1000.
        Assert.Equal([0L, 100, 201, 302, 403, 505, 607, 709, 812, 916], MergeSchedule.Exponential(100, 1.2).StepsThrough(1000));
    }

    [Fact]
    public void MaxGap_CapsEveryGap()
    {
        // T = 3, ψ = 2 as above, with every gap at most 10: 3, 5, 7, then 11 → 10, 19 → 10, 35 → 10.
        // (The reference clamps the step numbers themselves to max_proj_gap, which piles every later update onto one
        // step; capping the gap is what the option says — see MergeSchedule's remarks.)
        Assert.Equal([0L, 3, 8, 15, 25, 35, 45], MergeSchedule.Exponential(3, 2, maxGap: 10).StepsThrough(45));
    }

    [Fact]
    public void StepsThrough_IncludesTheLastStepWhenItIsAnUpdate()
    {
        Assert.Equal([0L, 4], MergeSchedule.Static(4).StepsThrough(4));
        Assert.Equal([0L], MergeSchedule.Static(4).StepsThrough(3));
    }

    [Fact]
    public void IsUpdateStep_AndNextUpdateStepAfter_FollowTheList()
    {
        var schedule = MergeSchedule.Exponential(3, 2);
        long[] updates = [0, 3, 8, 15, 26, 45];
        for (long step = 0; step <= 45; step++)
        {
            Assert.Equal(updates.Contains(step), schedule.IsUpdateStep(step));
            Assert.Equal(step < 45 ? updates.First(u => u > step) : 45 + 3 + 32, schedule.NextUpdateStepAfter(step));
        }

        Assert.False(schedule.IsUpdateStep(-1));
    }

    [Theory]
    [InlineData(0, 1.2, null, "update-interval")]
    [InlineData(10, 0.5, null, "interval-growth")]
    [InlineData(10, double.NaN, null, "interval-growth")]
    [InlineData(10, 1.2, 0, "max-gap")]
    public void OutOfRangeSettings_AreRejectedNamingTheOption(int interval, double growth, int? maxGap, string option)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => MergeSchedule.Exponential(interval, growth, maxGap));
        Assert.Equal(option, error.ParamName);
    }
}
