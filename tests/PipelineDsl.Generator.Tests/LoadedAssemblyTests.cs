using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using PipelineDsl.Graph;

namespace PipelineDsl.Generator.Tests;

/// <summary>Compiles pipelines with the generator, loads the assembly, and inspects what the runtime will see.</summary>
public class LoadedAssemblyTests
{
    private static PipelineDefinition DefinitionOf(Assembly assembly, string typeName) =>
        (PipelineDefinition)assembly.GetType(typeName, throwOnError: true)!.GetProperty("Definition")!.GetValue(null)!;

    private static string Fingerprint(string schema) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(schema)).AsSpan(0, 8));

    [Fact]
    public void Clicks_per_user_graph_and_manifest()
    {
        var assembly = GeneratorHarness.Load(TestPipelines.Records, TestPipelines.ClicksPerUser);
        var definition = DefinitionOf(assembly, "Demo.ClicksPerUser");

        Assert.Equal("clicks-per-user", definition.PipelineId);
        Assert.Equal(new[] { "clicks", "humans", "parse", "per-user", "totals" }, definition.Operators.Select(o => o.Id));
        Assert.Equal(
            new[] { OperatorKind.Source, OperatorKind.Filter, OperatorKind.Map, OperatorKind.UpdateState, OperatorKind.Sink },
            definition.Operators.Select(o => o.Kind));
        Assert.Equal(new[] { 1, 1, 1, 2, 1 }, definition.Operators.Select(o => o.Version));
        Assert.Equal(new[] { "", "clicks", "humans", "parse", "per-user" }, definition.Operators.Select(o => string.Join(",", o.Inputs.Select(i => i.Id))));

        var manifest = definition.Manifest;
        Assert.Equal("clicks-per-user", manifest.PipelineId);
        Assert.Equal(new[] { "clicks", "humans", "parse", "per-user", "totals" }, manifest.Operators.Select(o => o.Id));
        var perUser = manifest.Find("per-user")!;
        Assert.Equal("update-state", perUser.Kind);
        Assert.Equal(2, perUser.Version);
        Assert.Equal(new[] { "parse" }, perUser.Inputs);
        Assert.Equal("Demo.Click", perUser.InputType);
        Assert.Equal("Demo.UserTotals", perUser.OutputType);
        Assert.Equal("string", perUser.KeyType);
        Assert.Equal("Demo.UserState", perUser.StateType);
        Assert.Equal("{0:int64,1:int64}", perUser.StateSchema!.ValueSchema);
        Assert.Equal("string", perUser.StateSchema.KeySchema);
        Assert.Equal(Fingerprint("{0:int64,1:int64}"), perUser.StateSchema.Fingerprint);
        Assert.Equal(new[] { (0, "Clicks", "int64"), (1, "LastSeenMs", "int64") }, perUser.StateSchema.Fields.Select(f => (f.Key, f.Name, f.Type)));
        Assert.Equal("Demo.ClickEvent", manifest.Find("clicks")!.OutputType);
        Assert.Null(manifest.Find("clicks")!.StateSchema);
    }

    [Fact]
    public void Wiring_calls_the_users_methods()
    {
        var assembly = GeneratorHarness.Load(TestPipelines.Records, TestPipelines.ClicksPerUser);
        var definition = DefinitionOf(assembly, "Demo.ClicksPerUser");
        var clickEventType = assembly.GetType("Demo.ClickEvent")!;
        object human = Activator.CreateInstance(clickEventType, "u1", "/home", 42L, false)!;
        object bot = Activator.CreateInstance(clickEventType, "u2", "/robots.txt", 43L, true)!;

        var filter = (Delegate)definition.GetOperator("humans").GetType().GetProperty("Predicate")!.GetValue(definition.GetOperator("humans"))!;
        Assert.Equal(true, filter.DynamicInvoke(human));
        Assert.Equal(false, filter.DynamicInvoke(bot));
        // A lambda calling IsHuman, not the method group: a delegate bound to a static method pays a shuffle thunk per call.
        Assert.False(filter.Method.IsStatic);
        Assert.NotNull(filter.Target);

        var map = (Delegate)definition.GetOperator("parse").GetType().GetProperty("Function")!.GetValue(definition.GetOperator("parse"))!;
        Assert.False(map.Method.IsStatic);
        Assert.Equal("Click { UserId = u1, Url = /home, TimestampMs = 42 }", map.DynamicInvoke(human)!.ToString());

        var perUser = definition.GetOperator("per-user");
        var key = (Delegate)perUser.GetType().GetProperty("KeySelector")!.GetValue(perUser)!;
        Assert.Equal("u1", key.DynamicInvoke(map.DynamicInvoke(human)));
        Assert.Equal(0, perUser.GetType().GetProperty("IdleTimeoutBatches")!.GetValue(perUser));
    }

    [Fact]
    public void Every_kind_pipeline_loads_with_its_settings()
    {
        var assembly = GeneratorHarness.Load(TestPipelines.EveryKind);
        var definition = DefinitionOf(assembly, "Demo.Everything.Everything");
        Assert.Equal(17, definition.Operators.Count);
        Assert.Equal(definition.Operators.Select(o => o.Id).OrderBy(i => i, StringComparer.Ordinal), definition.Manifest.Operators.Select(o => o.Id));

        // Topological: every operator after its inputs.
        var seen = new HashSet<string>();
        foreach (var op in definition.Operators)
        {
            Assert.All(op.Inputs, i => Assert.Contains(i.Id, seen));
            seen.Add(op.Id);
        }

        var window = definition.GetOperator("trending");
        Assert.Equal(6, window.GetType().GetProperty("LengthBatches")!.GetValue(window));
        Assert.Equal(2, window.GetType().GetProperty("SlideBatches")!.GetValue(window));
        Assert.Equal(new[] { "orders", "customers" }, definition.GetOperator("enriched").Inputs.Select(i => i.Id));
        Assert.Equal(new[] { "lines", "more-lines" }, definition.GetOperator("all-lines").Inputs.Select(i => i.Id));
        Assert.Equal(3, definition.GetOperator("more-lines").Version);
        var totals = definition.GetOperator("totals");
        Assert.Equal(10, totals.GetType().GetProperty("IdleTimeoutBatches")!.GetValue(totals));
        Assert.Equal("Expired", ((Delegate)totals.GetType().GetProperty("OnTimeout")!.GetValue(totals)!).Method.Name);
        Assert.Equal(Fingerprint("{0:string,1:int64}"), definition.Manifest.Find("trending")!.StateSchema!.Fingerprint);
    }

    [Fact]
    public void Source_and_sink_handles_name_their_pipeline_and_id()
    {
        var assembly = GeneratorHarness.Load(TestPipelines.Records, TestPipelines.ClicksPerUser);
        var type = assembly.GetType("Demo.ClicksPerUser")!;
        dynamic source = type.GetMethod("Clicks")!.Invoke(null, null)!;
        dynamic sink = type.GetMethod("Totals")!.Invoke(null, null)!;
        Assert.Equal("clicks", (string)source.Id);
        Assert.Equal("clicks-per-user", (string)source.PipelineId);
        Assert.Equal("totals", (string)sink.Id);
        Assert.Equal("clicks-per-user", (string)type.GetField("PipelineId")!.GetValue(null)!);
    }
}
