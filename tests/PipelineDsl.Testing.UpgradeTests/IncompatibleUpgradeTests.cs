using PipelineDsl.Checkpointing;

namespace PipelineDsl.Testing.UpgradeTests;

public sealed record Click(string User, long AtMs);

public sealed record Total(string User, long Clicks);

[StateContract]
public partial record struct SeenAsText([property: Field(0)] string Clicks);

/// <summary>The kit's pipeline after an incompatible edit: the same id, its state's field 0 now a string, its version not raised.</summary>
[Pipeline("kit-clicks")]
public static partial class KitClicks
{
    [Source("clicks")]
    public static partial Source<Click> Clicks();

    [UpdateState("per-user", From = "clicks", Key = nameof(Click.User), IdleTimeoutBatches = 3)]
    public static Total PerUser(string user, Click click, KeyedState<SeenAsText> state)
    {
        state.Update(new SeenAsText(state.Value.Clicks + "x"));
        return new Total(user, state.Value.Clicks.Length);
    }

    [Sink("totals", From = "per-user")]
    public static partial Sink<Total> Totals();
}

/// <summary>The golden checkpoint of PipelineDsl.Testing.Tests against this incompatible build: the upgrade check names the operator and why, and the restore refuses it.</summary>
public class IncompatibleUpgradeTests
{
    private static string Golden => Path.Combine(AppContext.BaseDirectory, "GoldenCheckpoints", "kit-clicks-v1");

    [Fact]
    public void The_upgrade_check_reports_the_operator_whose_state_this_build_cannot_read_and_the_restore_refuses_it()
    {
        var check = GoldenCheckpoint.Check(KitClicks.Definition, Golden);
        Assert.False(check.CanRestore, check.ToString());
        var row = Assert.Single(check.Rows, r => r.Operator == "per-user");
        Assert.StartsWith("INCOMPATIBLE", row.Result);
        Assert.Contains(check.Rows, r => r is { Operator: "clicks", Result: "kept" });

        using var driver = new PipelineTestDriver(KitClicks.Definition, new PipelineTestOptions { Checkpoint = GoldenCheckpoint.Load(Golden) });
        driver.Input(KitClicks.Clicks());
        driver.Output(KitClicks.Totals());
        var refused = Assert.ThrowsAny<CheckpointException>(() => driver.RunBatch());
        Assert.Contains("per-user", refused.Message);
    }
}
