using Microsoft.CodeAnalysis;

namespace PipelineDsl.Generator.Tests;

/// <summary>
/// Compile-time compatibility: the generator compares the pipeline with its committed lock file and reports
/// every change that would strand a checkpoint written by the locked build — and nothing for safe changes.
/// </summary>
public class LockFileTests
{
    private static readonly string Lock = GeneratorHarness.LockFile(
        Manifests.Of((TestPipelines.Records, "Records.cs"), (TestPipelines.ClicksPerUser, "ClicksPerUser.cs")));

    private static IReadOnlyList<Diagnostic> Compatibility(string records, string pipeline, string? lockFile = null)
    {
        var compilation = GeneratorHarness.Compilation((records, "Records.cs"), (pipeline, "Test.cs"));
        var result = GeneratorHarness.Run(compilation, GeneratorHarness.Driver(("/repo/pipelines.lock.json", lockFile ?? Lock)));
        Assert.DoesNotContain(result.GeneratorDiagnostics, d => d.Id == "PDSL000");
        return result.GeneratorDiagnostics.Where(d => d.Id.StartsWith("PDSL2", StringComparison.Ordinal)).ToList();
    }

    private static void Single(string records, string markedPipeline, string id, string message)
    {
        int start = markedPipeline.IndexOf("[|", StringComparison.Ordinal);
        int end = markedPipeline.IndexOf("|]", StringComparison.Ordinal) - 2;
        string pipeline = markedPipeline.Replace("[|", "").Replace("|]", "");
        var found = Compatibility(records, pipeline);
        var d = Assert.Single(found);
        Assert.Equal(id, d.Id);
        Assert.Equal(message, d.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal("Test.cs", d.Location.GetLineSpan().Path);
        Assert.Equal(new Microsoft.CodeAnalysis.Text.TextSpan(start, end - start), d.Location.SourceSpan);
    }

    private static string Pipeline(Func<string, string> change)
    {
        string changed = change(TestPipelines.ClicksPerUser);
        Assert.NotEqual(TestPipelines.ClicksPerUser, changed);
        return changed;
    }

    [Fact]
    public void Safe_changes_produce_no_compatibility_diagnostic()
    {
        var safe = new (string Records, string Pipeline)[]
        {
            (TestPipelines.Records, TestPipelines.ClicksPerUser),
            (TestPipelines.Records, Pipeline(p => p.Replace("PerUser(", "CountPerUser(").Replace("Parse(", "ToClick("))),
            (TestPipelines.Records, Pipeline(p => p.Replace("namespace Demo;", "namespace Elsewhere;\nusing Demo;").Replace("class ClicksPerUser", "class Renamed"))),
            (TestPipelines.Records, Pipeline(p => p.Replace("=> !e.IsBot;", "=> !e.IsBot && e.Url != \"/health\";"))),
            (TestPipelines.Records, Pipeline(p => p.Replace("    [Map(\"parse\", From = \"humans\")]", "    [Filter(\"short-urls\", From = \"humans\")]\n    public static bool Short(ClickEvent e) => e.Url.Length < 100;\n\n    [Map(\"parse\", From = \"short-urls\")]"))),
            (TestPipelines.Records, Pipeline(p => p.Replace("    [Sink(\"totals\"", "    [Source(\"more-clicks\")]\n    public static partial Source<ClickEvent> MoreClicks();\n\n    [Sink(\"more\", From = \"more-clicks\")]\n    public static partial Sink<ClickEvent> More();\n\n    [Sink(\"totals\""))),
            // a field added with a new key, a field removed
            (TestPipelines.Records.Replace("[property: Field(1)] long LastSeenMs);", "[property: Field(1)] long LastSeenMs, [property: Field(2)] string? Note = null);"), TestPipelines.ClicksPerUser),
            (TestPipelines.Records.Replace(", [property: Field(1)] long LastSeenMs);", ");"), TestPipelines.ClicksPerUser.Replace("new UserState(state.Value.Clicks + 1, click.TimestampMs)", "new UserState(state.Value.Clicks + 1)")),
            // a field widened
            (TestPipelines.Records.Replace("[property: Field(0)] long Clicks", "[property: Field(0)] long Clicks"), TestPipelines.ClicksPerUser),
        };
        foreach (var (records, pipeline) in safe) Assert.Empty(Compatibility(records, pipeline).Select(d => d.ToString()));
    }

    [Fact]
    public void PDSL200_removing_a_stateful_operator_without_retiring_it() => Single(TestPipelines.Records,
        Pipeline(p => p
            .Replace("public static partial class ClicksPerUser", "public static partial class [|ClicksPerUser|]")
            .Replace("[UpdateState(\"per-user\", From = \"parse\", Key = nameof(Click.UserId), Version = 2)]", "[Map(\"totals-of\", From = \"parse\")]\n    public static UserTotals Of(Click c) => new(c.UserId, 1);\n\n    private static UserTotals Unused(string userId, Click click, KeyedState<UserState> state)")
            .Replace("[Sink(\"totals\", From = \"per-user\")]", "[Sink(\"totals\", From = \"totals-of\")]")),
        "PDSL200", "The locked pipeline 'clicks-per-user' has the stateful operator 'per-user', which this build removes: restoring an existing checkpoint would fail. Declare [RetiredOperator(\"per-user\")] on the pipeline class to drop its state on purpose, or bring the operator back.");

    [Fact]
    public void PDSL200_is_silenced_by_retiring_the_operator()
    {
        string retired = Pipeline(p => p
            .Replace("[Pipeline(\"clicks-per-user\")]", "[Pipeline(\"clicks-per-user\")]\n[RetiredOperator(\"per-user\")]")
            .Replace("[UpdateState(\"per-user\", From = \"parse\", Key = nameof(Click.UserId), Version = 2)]", "[Map(\"totals-of\", From = \"parse\")]\n    public static UserTotals Of(Click c) => new(c.UserId, 1);\n\n    private static UserTotals Unused(string userId, Click click, KeyedState<UserState> state)")
            .Replace("[Sink(\"totals\", From = \"per-user\")]", "[Sink(\"totals\", From = \"totals-of\")]"));
        Assert.Empty(Compatibility(TestPipelines.Records, retired));
    }

    [Fact]
    public void PDSL201_incompatible_state_change_without_a_version_bump() => Single(
        TestPipelines.Records.Replace("[property: Field(1)] long LastSeenMs", "[property: Field(1)] string LastSeenMs"),
        Pipeline(p => p.Replace("click.TimestampMs);", "click.TimestampMs.ToString());").Replace("public static UserTotals PerUser(", "public static UserTotals [|PerUser|](")),
        "PDSL201", "The state of 'per-user' changed incompatibly at version 2 (field 1 was int64 and is now string): checkpoints written by the locked build could not be read. Set Version = 3 and add a [StateMigration(\"per-user\", FromVersion = 2)] method, or declare [DiscardState(\"per-user\", FromVersion = 2)].");

    [Fact]
    public void PDSL202_version_bump_without_a_migration() => Single(TestPipelines.Records,
        Pipeline(p => p.Replace("Version = 2)]", "Version = 3)]").Replace("public static UserTotals PerUser(", "public static UserTotals [|PerUser|](")),
        "PDSL202", "'per-user' moves from version 2 to 3 with no migration from version 2: its checkpointed state would be stranded. Add a [StateMigration(\"per-user\", FromVersion = 2)] method, or declare [DiscardState(\"per-user\", FromVersion = 2)] to start it empty on purpose.");

    [Fact]
    public void PDSL202_is_satisfied_by_a_migration_or_a_discard()
    {
        string migrated = Pipeline(p => p.Replace("Version = 2)]", "Version = 3)]").Replace("    [Sink(\"totals\"",
            "    [StateMigration(\"per-user\", FromVersion = 2)]\n    public static UserState Up(UserState old) => old with { Clicks = old.Clicks };\n\n    [Sink(\"totals\""));
        Assert.Empty(Compatibility(TestPipelines.Records, migrated));
        string discarded = Pipeline(p => p.Replace("Version = 2)]", "Version = 3)]").Replace("[Pipeline(\"clicks-per-user\")]", "[Pipeline(\"clicks-per-user\")]\n[DiscardState(\"per-user\", FromVersion = 2)]"));
        Assert.Empty(Compatibility(TestPipelines.Records, discarded));
    }

    [Fact]
    public void PDSL203_removing_a_source_without_retiring_it() => Single(TestPipelines.Records,
        Pipeline(p => p.Replace("public static partial class ClicksPerUser", "public static partial class [|ClicksPerUser|]")
            .Replace("[Source(\"clicks\")]", "[Source(\"clicks-v2\")]").Replace("From = \"clicks\"", "From = \"clicks-v2\"")),
        "PDSL203", "The locked pipeline 'clicks-per-user' has the source 'clicks', which this build removes: checkpoints hold its positions. Declare [RetiredOperator(\"clicks\")] on the pipeline class to drop them on purpose, or bring the source back.");

    [Fact]
    public void PDSL204_key_type_changed() => Single(TestPipelines.Records,
        Pipeline(p => p.Replace("Key = nameof(Click.UserId)", "Key = nameof(Click.TimestampMs)")
            .Replace("public static UserTotals PerUser(string userId,", "public static UserTotals [|PerUser|](long at,").Replace("new UserTotals(userId,", "new UserTotals(click.UserId,")),
        "PDSL204", "The key of 'per-user' changed from string to int64: keyed state cannot be migrated to another key type. Give the operator a new id and declare [RetiredOperator(\"per-user\")], or bump its Version and declare [DiscardState].");

    [Fact]
    public void PDSL205_version_lowered() => Single(TestPipelines.Records,
        Pipeline(p => p.Replace(", Version = 2)]", ")]").Replace("public static UserTotals PerUser(", "public static UserTotals [|PerUser|](")),
        "PDSL205", "'per-user' is locked at version 2 but this build declares version 1: versions only go up. Restore Version = 2 or higher.");

    [Fact]
    public void PDSL206_kind_changed_under_the_same_id() => Single(TestPipelines.Records,
        Pipeline(p => p.Replace("[UpdateState(\"per-user\", From = \"parse\", Key = nameof(Click.UserId), Version = 2)]", "[Map(\"per-user\", From = \"parse\", Version = 2)]\n    public static UserTotals [|Of|](Click c) => new(c.UserId, 1);\n\n    private static UserTotals Unused(string userId, Click click, KeyedState<UserState> state)")),
        "PDSL206", "'per-user' was a 'update-state' in the locked build and is now a 'map': its checkpointed data would be misread. Give the new operator a new id and declare [RetiredOperator(\"per-user\")].");

    [Fact]
    public void PDSL207_migration_that_cannot_read_the_locked_state() => Single(
        TestPipelines.Records + "\n[StateContract] public partial record struct OldState([property: Field(0)] string Clicks);\n",
        Pipeline(p => p.Replace("Version = 2)]", "Version = 3)]").Replace("public static UserTotals PerUser(", "public static UserTotals [|PerUser|](").Replace("    [Sink(\"totals\"",
            "    [StateMigration(\"per-user\", FromVersion = 2)]\n    public static UserState Up(OldState old) => new(long.Parse(old.Clicks), 0);\n\n    [Sink(\"totals\"")),
        "PDSL207", "The migration of 'per-user' from version 2 ('Up') takes a type that cannot read the state the locked build wrote (field 0 was int64 and is now string): keep the old state type's field keys and types.");

    [Fact]
    public void PDSL208_unreadable_lock_file_is_a_warning_that_names_the_file()
    {
        var found = Compatibility(TestPipelines.Records, TestPipelines.ClicksPerUser, "{ \"pipelines\": [ { \"pipeline\": } ] }");
        var d = Assert.Single(found);
        Assert.Equal("PDSL208", d.Id);
        Assert.Equal(DiagnosticSeverity.Warning, d.Severity);
        Assert.Equal("The lock file '/repo/pipelines.lock.json' cannot be read (line 1, column 32: unexpected character '}'), so checkpoint compatibility is not checked: regenerate it with 'pipelinedsl lock'", d.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("/repo/pipelines.lock.json", d.Location.GetLineSpan().Path);
    }

    [Fact]
    public void Pipelines_missing_from_the_lock_file_are_not_checked() =>
        Assert.Empty(Compatibility(TestPipelines.Records, TestPipelines.ClicksPerUser.Replace("\"clicks-per-user\"", "\"new-pipeline\"").Replace("Version = 2)]", "Version = 9)]")));
}
