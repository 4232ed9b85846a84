namespace PipelineDsl.Generator.Tests;

/// <summary>
/// Operator identity survives everything that is not a change of the operator itself: renamed methods,
/// a renamed or moved class, reordered members, unrelated new stages.
/// </summary>
public class StabilityTests
{
    private static readonly string Baseline = Manifests.Of((TestPipelines.Records, "Records.cs"), (TestPipelines.ClicksPerUser, "Pipelines/ClicksPerUser.cs"));

    private static void AssertEveryEntryIdentical(string changedPipelineSource, string path = "Pipelines/ClicksPerUser.cs", string records = TestPipelines.Records)
    {
        var before = Manifests.Entries(Baseline);
        var after = Manifests.Entries(Manifests.Of((records, "Records.cs"), (changedPipelineSource, path)));
        foreach (var (id, entry) in before)
        {
            Assert.True(after.ContainsKey(id), $"operator '{id}' disappeared");
            Assert.Equal(entry, after[id]);
        }
    }

    [Fact]
    public void Renaming_stage_methods_changes_no_entry()
    {
        string renamed = TestPipelines.ClicksPerUser
            .Replace("IsHuman", "IsNotABot")
            .Replace("Parse(", "ToClick(")
            .Replace("PerUser(", "CountPerUser(")
            .Replace("Totals()", "WriteTotals()")
            .Replace("Clicks()", "ClickStream()");
        Assert.NotEqual(TestPipelines.ClicksPerUser, renamed);
        AssertEveryEntryIdentical(renamed);
    }

    [Fact]
    public void Renaming_the_class_and_moving_it_to_another_namespace_and_file_changes_no_entry()
    {
        string moved = TestPipelines.ClicksPerUser
            .Replace("namespace Demo;", "namespace Company.Analytics.Streaming;\nusing Demo;")
            .Replace("class ClicksPerUser", "class UserClickCounter");
        Assert.NotEqual(TestPipelines.ClicksPerUser, moved);
        AssertEveryEntryIdentical(moved, path: "Somewhere/Else/Counter.cs");
    }

    [Fact]
    public void Reordering_members_changes_no_entry()
    {
        const string reordered = """
            using PipelineDsl;

            namespace Demo;

            [Pipeline("clicks-per-user")]
            public static partial class ClicksPerUser
            {
                [Sink("totals", From = "per-user")]
                public static partial Sink<UserTotals> Totals();

                [UpdateState("per-user", Version = 2, Key = nameof(Click.UserId), From = "parse")]
                public static UserTotals PerUser(string userId, Click click, KeyedState<UserState> state)
                {
                    var next = new UserState(state.Value.Clicks + 1, click.TimestampMs);
                    state.Update(next);
                    return new UserTotals(userId, next.Clicks);
                }

                [Map("parse", From = "humans")]
                public static Click Parse(ClickEvent e) => new(e.UserId, e.Url, e.TimestampMs);

                [Filter("humans", From = "clicks")]
                public static bool IsHuman(ClickEvent e) => !e.IsBot;

                [Source("clicks")]
                public static partial Source<ClickEvent> Clicks();
            }
            """;
        AssertEveryEntryIdentical(reordered);
        Assert.Equal(Baseline, Manifests.Of((TestPipelines.Records, "Records.cs"), (reordered, "Pipelines/ClicksPerUser.cs")));
    }

    [Fact]
    public void Adding_an_unrelated_stage_changes_no_existing_entry()
    {
        string extended = TestPipelines.ClicksPerUser.Replace(
            "    [Sink(\"totals\", From = \"per-user\")]",
            """
                [Map("urls", From = "parse")]
                public static string Url(Click c) => c.Url;

                [Sink("url-log", From = "urls")]
                public static partial Sink<string> UrlLog();

                [Sink("totals", From = "per-user")]
            """);
        Assert.NotEqual(TestPipelines.ClicksPerUser, extended);
        AssertEveryEntryIdentical(extended);
        var after = Manifests.Entries(Manifests.Of((TestPipelines.Records, "Records.cs"), (extended, "P.cs")));
        Assert.Contains("urls", after.Keys);
        Assert.Contains("url-log", after.Keys);
    }

    [Fact]
    public void Editing_stateless_logic_changes_nothing()
    {
        string edited = TestPipelines.ClicksPerUser.Replace("=> !e.IsBot;", "=> !e.IsBot && e.Url.Length > 0;");
        Assert.NotEqual(TestPipelines.ClicksPerUser, edited);
        Assert.Equal(Baseline, Manifests.Of((TestPipelines.Records, "Records.cs"), (edited, "P.cs")));
    }

    [Fact]
    public void Renaming_a_state_field_or_the_state_type_keeps_the_fingerprint()
    {
        string renamedField = TestPipelines.Records.Replace("long Clicks,", "long ClickCount,");
        string pipeline = TestPipelines.ClicksPerUser.Replace("state.Value.Clicks", "state.Value.ClickCount").Replace("next.Clicks", "next.ClickCount");
        string after = Manifests.Of((renamedField, "Records.cs"), (pipeline, "P.cs"));
        Assert.Equal(Manifests.Fingerprint(Baseline, "per-user"), Manifests.Fingerprint(after, "per-user"));

        string renamedType = TestPipelines.Records.Replace("UserState(", "PerUserState(");
        string pipeline2 = TestPipelines.ClicksPerUser.Replace("UserState", "PerUserState");
        string after2 = Manifests.Of((renamedType, "Records.cs"), (pipeline2, "P.cs"));
        Assert.Equal(Manifests.Fingerprint(Baseline, "per-user"), Manifests.Fingerprint(after2, "per-user"));
    }

    [Fact]
    public void Changing_a_field_key_or_type_changes_the_fingerprint()
    {
        string rekeyed = TestPipelines.Records.Replace("[property: Field(1)] long LastSeenMs", "[property: Field(2)] long LastSeenMs");
        string retyped = TestPipelines.Records.Replace("[property: Field(1)] long LastSeenMs", "[property: Field(1)] double LastSeenMs");
        string baseline = Manifests.Fingerprint(Baseline, "per-user");
        string retypedPipeline = TestPipelines.ClicksPerUser.Replace("click.TimestampMs)", "(double)click.TimestampMs)");
        Assert.NotEqual(baseline, Manifests.Fingerprint(Manifests.Of((rekeyed, "Records.cs"), (TestPipelines.ClicksPerUser, "P.cs")), "per-user"));
        Assert.NotEqual(baseline, Manifests.Fingerprint(Manifests.Of((retyped, "Records.cs"), (retypedPipeline, "P.cs")), "per-user"));
    }

    [Fact]
    public void The_fingerprint_is_the_sha256_of_the_canonical_schema()
    {
        // Computed here independently of the generator: the first 8 bytes of SHA-256 of "{0:int64,1:int64}".
        byte[] hash = System.Security.Cryptography.SHA256.HashData("{0:int64,1:int64}"u8);
        Assert.Equal(Convert.ToHexStringLower(hash.AsSpan(0, 8)), Manifests.Fingerprint(Baseline, "per-user"));
    }
}
