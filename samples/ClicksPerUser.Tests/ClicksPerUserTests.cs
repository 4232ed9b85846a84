using ClicksPerUser;
using PipelineDsl;
using PipelineDsl.Testing;
using Xunit;

namespace ClicksPerUser.Tests;

/// <summary>
/// The ClicksPerUser job tested the way PipelineDsl.Testing proposes: one batch at a time with our own clicks, the idle
/// timeout counted in batches, a crash in the middle of the stream, a bad line, and our committed golden checkpoint.
/// </summary>
public class ClicksPerUserTests
{
    private static ClickEvent Human(string user, long atMs) => new(user, "/page", atMs, IsBot: false);

    private static (PipelineTestDriver Driver, TestInput<ClickEvent> Clicks, TestOutput<UserTotals> Totals) Start(PipelineTestOptions? options = null)
    {
        var driver = new PipelineTestDriver(ClicksPerUserPipeline.Definition, options);
        return (driver, driver.Input(ClicksPerUserPipeline.Clicks()), driver.Output(ClicksPerUserPipeline.Totals()));
    }

    [Fact]
    public void Each_human_click_raises_its_users_running_total_and_bots_are_not_counted()
    {
        var (driver, clicks, totals) = Start();
        using var _ = driver;
        clicks.Add(Human("u1", 1_000), new ClickEvent("bot", "/x", 1_100, IsBot: true), Human("u2", 1_200), Human("u1", 1_300));
        driver.RunBatch();
        Assert.Equal(new[] { new UserTotals("u1", 1, 1_000), new UserTotals("u2", 1, 1_200), new UserTotals("u1", 2, 1_300) }, totals.Batch(0));
        Assert.Equal(new UserState(2, 1_300), driver.StateOf<string, UserState>("per-user")["u1"]);
        Assert.False(driver.StateOf<string, UserState>("per-user").ContainsKey("bot"));
    }

    [Fact]
    public void A_user_idle_for_100_batches_is_forgotten_and_counts_again_from_one()
    {
        var (driver, clicks, totals) = Start();
        using var _ = driver;
        clicks.Add(Human("u1", 1_000));
        driver.RunBatch(); // batch 0
        driver.RunBatches(99); // 1-99: 99 batches without u1
        clicks.Add(Human("u1", 2_000));
        driver.RunBatch(); // 100: still remembered
        Assert.Equal(2, totals.Batch(100).Single().Clicks);

        driver.RunBatches(100); // 101-200: 100 batches without u1
        Assert.False(driver.StateOf<string, UserState>("per-user").ContainsKey("u1"));
        clicks.Add(Human("u1", 3_000));
        driver.RunBatch(); // 201
        Assert.Equal(new UserTotals("u1", 1, 3_000), totals.Batch(201).Single());
    }

    /// <summary>Ten batches of the same clicks; a crash (a kill after the commit of batch <paramref name="crashAfter"/>) or none.</summary>
    private static IReadOnlyDictionary<long, IReadOnlyList<UserTotals>> Stream(int? crashAfter)
    {
        var (driver, clicks, totals) = Start(new PipelineTestOptions { CheckpointInterval = 3 });
        using var _ = driver;
        for (int batch = 0; batch < 10; batch++)
        {
            for (int i = 0; i < 5; i++) clicks.Add(Human("u" + ((batch * 5 + i) % 4), batch * 1_000 + i));
            driver.RunBatch();
            if (batch == crashAfter) driver.CrashAndRestore();
        }

        return totals.Batches;
    }

    [Fact]
    public void A_crash_in_the_middle_of_the_stream_changes_nothing_in_the_output()
    {
        var expected = Stream(crashAfter: null);
        Assert.Equal(10, expected.Count);
        Assert.Equal(new UserTotals("u3", 12, 9_002), expected[9].Last(t => t.UserId == "u3")); // clicks 3, 7, ..., 47 of 50: twelve, the last at 9002
        foreach (int crash in new[] { 0, 4, 7 })
        {
            var actual = Stream(crash);
            Assert.Equal(expected.Keys, actual.Keys);
            foreach (var (batch, records) in expected) Assert.Equal(records, actual[batch]);
        }
    }

    [Fact]
    public void A_line_that_does_not_parse_goes_to_the_dead_letters_and_the_rest_is_counted()
    {
        var (driver, clicks, totals) = Start(new PipelineTestOptions { BadRecordPolicy = BadRecordPolicy.DeadLetter });
        using var _ = driver;
        clicks.Add(Human("u1", 1_000)).AddBadRecord("u1,/page,yesterday,0").Add(Human("u1", 2_000));
        driver.RunBatch();
        Assert.Equal(2, totals.All[^1].Clicks);
        Assert.Contains("yesterday", Assert.Single(driver.DeadLetters));
    }

    private static string Golden => Path.Combine(AppContext.BaseDirectory, "GoldenCheckpoints", "clicks-per-user-v1");

    /// <summary>
    /// Our golden checkpoint, written on 2026-12-02 by the job as it was then: u1 clicked at 1000 and 2000, u2 at 1500, in
    /// one batch, then a clean stop. Every later build must restore it with that state.
    /// </summary>
    [Fact]
    public void This_build_restores_our_golden_checkpoint_with_its_state_and_goes_on_counting()
    {
        var check = GoldenCheckpoint.Check(ClicksPerUserPipeline.Definition, Golden);
        Assert.True(check.CanRestore, check.ToString());

        var (driver, clicks, totals) = Start(new PipelineTestOptions { Checkpoint = GoldenCheckpoint.Load(Golden) });
        using var _ = driver;
        var state = driver.StateOf<string, UserState>("per-user");
        Assert.Equal(new UserState(2, 2_000), state["u1"]);
        Assert.Equal(new UserState(1, 1_500), state["u2"]);

        clicks.Add(Human("u1", 1_000), Human("u2", 1_500), Human("u1", 2_000)); // what the checkpoint read, as the source still holds it
        clicks.Add(Human("u1", 3_000));
        driver.RunBatch();
        Assert.Equal(new UserTotals("u1", 3, 3_000), totals.Batch(1).Single());
    }
}
