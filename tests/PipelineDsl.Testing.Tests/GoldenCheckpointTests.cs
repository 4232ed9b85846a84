using PipelineDsl.Checkpointing;

namespace PipelineDsl.Testing.Tests;

/// <summary>
/// Users' own golden checkpoints, as the kit proposes them: a checkpoint of the kit's pipeline written by this build on
/// 2026-12-02 and committed under GoldenCheckpoints/kit-clicks-v1 (never regenerated) must restore in every later build,
/// with the state it held (an incompatible edit is checked by PipelineDsl.Testing.UpgradeTests, a build of its own).
/// </summary>
public class GoldenCheckpointTests
{
    private static string Golden => Path.Combine(AppContext.BaseDirectory, "GoldenCheckpoints", "kit-clicks-v1");

    [Fact]
    public void The_committed_checkpoint_restores_in_this_build_with_the_state_it_held_and_the_pipeline_continues_from_it()
    {
        var check = GoldenCheckpoint.Check(KitClicks.Definition, Golden);
        Assert.True(check.CanRestore, check.ToString());
        Assert.Contains(check.Rows, r => r is { Operator: "per-user", Result: "kept" });

        // Written by: a, a, b in batch 0; a in batch 1; a clean stop (its snapshot). Seen from outside the code under test.
        using var driver = new PipelineTestDriver(KitClicks.Definition, new PipelineTestOptions { Checkpoint = GoldenCheckpoint.Load(Golden) });
        var input = driver.Input(KitClicks.Clicks());
        var output = driver.Output(KitClicks.Totals());
        Assert.Equal(new Dictionary<string, Seen> { ["a"] = new(3), ["b"] = new(1) }, driver.StateOf<string, Seen>("per-user").OrderBy(p => p.Key).ToDictionary());
        // The source still holds what the checkpoint read (as a topic would): the same four clicks, then a new one.
        input.Add(new Click("a", 1), new Click("a", 2), new Click("b", 3), new Click("a", 4));
        input.Add(new Click("a", 9));
        var batch = driver.RunBatch();
        Assert.Equal(2, batch.BatchId);
        Assert.Equal(new Total("a", 4), output.Batch(2).Single());
        Assert.True(driver.LastRecovery!.Restored);
    }

    [Fact]
    public void Save_writes_every_file_once_and_refuses_to_overwrite_and_Load_gives_back_the_same_bytes()
    {
        using var dir = new TempDir();
        using var driver = new PipelineTestDriver(KitClicks.Definition);
        driver.Input(KitClicks.Clicks()).Add(new Click("a", 1));
        driver.Output(KitClicks.Totals());
        driver.RunBatch();
        driver.Restart();

        string target = dir.Sub("golden");
        GoldenCheckpoint.Save(driver.Checkpoint, target);
        var saved = GoldenCheckpoint.Files(driver.Checkpoint).ToDictionary(f => f.Name, f => f.Bytes);
        var loaded = GoldenCheckpoint.Files(GoldenCheckpoint.Load(target)).ToDictionary(f => f.Name, f => f.Bytes);
        Assert.Equal(saved.Keys.Order(), loaded.Keys.Order());
        Assert.All(saved, f => Assert.True(f.Value.AsSpan().SequenceEqual(loaded[f.Key]), f.Key));
        Assert.Contains("never regenerated", Assert.Throws<IOException>(() => GoldenCheckpoint.Save(driver.Checkpoint, target)).Message);
    }

    [Fact]
    public void State_is_read_typed_by_key_and_a_wrong_question_is_a_clear_error()
    {
        using var driver = new PipelineTestDriver(KitClicks.Definition);
        var input = driver.Input(KitClicks.Clicks());
        driver.Output(KitClicks.Totals());
        Assert.Empty(driver.StateOf<string, Seen>("per-user"));
        input.Add(new Click("a", 1), new Click("b", 2), new Click("a", 3));
        driver.RunBatch();
        Assert.Equal(new Seen(2), driver.StateOf<string, Seen>("per-user")["a"]);

        driver.CrashAndRestore(); // read right after a crash: the run restores first
        Assert.Equal(new Seen(1), driver.StateOf<string, Seen>("per-user")["b"]);

        Assert.Contains("StateOf<String, Seen>", Assert.Throws<ArgumentException>(() => driver.StateOf<string, long>("per-user")).Message);
        Assert.Contains("'per-user'", Assert.Throws<ArgumentException>(() => driver.StateOf<string, Seen>("nope")).Message);
    }
}
