using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

public class GraphTests
{
    private const string Manifest = """
        {
          "formatVersion": 1,
          "pipeline": "p",
          "operators": [
            { "id": "in", "version": 1, "kind": "source", "inputs": [], "outputType": "int" },
            { "id": "out", "version": 1, "kind": "sink", "inputs": ["twice"], "inputType": "int" },
            { "id": "twice", "version": 1, "kind": "map", "inputs": ["in"], "inputType": "int", "outputType": "int" }
          ]
        }
        """;

    private static int Twice(int x) => x * 2;

    [Fact]
    public void Builder_checks_wiring_against_the_manifest()
    {
        var b = new PipelineBuilder("p", Manifest);
        var input = b.Source<int>("in", 1);
        var twice = b.Map<int, int>("twice", 1, input, Twice);
        b.Sink("out", 1, twice);
        var definition = b.Build();
        Assert.Equal(new[] { "in", "twice", "out" }, definition.Operators.Select(o => o.Id));
        Assert.Equal(3, definition.Manifest.Operators.Count);
    }

    [Fact]
    public void Builder_refuses_a_version_that_disagrees_with_the_manifest()
    {
        var b = new PipelineBuilder("p", Manifest);
        var input = b.Source<int>("in", 1);
        var twice = b.Map<int, int>("twice", 2, input, Twice);
        b.Sink("out", 1, twice);
        var e = Assert.Throws<PipelineDefinitionException>(() => b.Build());
        Assert.Contains("'twice'", e.Message);
        Assert.Contains("Rebuild", e.Message);
    }

    [Fact]
    public void Builder_refuses_duplicate_ids_and_foreign_inputs()
    {
        var b = new PipelineBuilder("p", Manifest);
        b.Source<int>("in", 1);
        Assert.Throws<PipelineDefinitionException>(() => b.Source<int>("in", 1));
        var other = new PipelineBuilder("q", Manifest).Source<int>("x", 1);
        var e = Assert.Throws<PipelineDefinitionException>(() => b.Map<int, int>("twice", 1, other, Twice));
        Assert.Contains("does not belong to pipeline 'p'", e.Message);
    }

    [Fact]
    public void Builder_validates_window_and_timeout_settings()
    {
        var b = new PipelineBuilder("p", Manifest);
        var input = b.Source<int>("in", 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => b.Window<int, int>("w", 1, input, Twice, (x, y) => x + y, MessagePackFormatters.Int32, MessagePackFormatters.Int32, 5, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.UpdateState<int, int, int, int>("u", 1, input, Twice, (k, v, s) => v, MessagePackFormatters.Int32, MessagePackFormatters.Int32, idleTimeoutBatches: -1));
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("{}", "has no 'formatVersion'")]
    [InlineData("""{ "formatVersion": 99, "pipeline": "p", "operators": [] }""", "format version 99")]
    [InlineData("""{ "formatVersion": 1, "pipeline": "p", "operators": [ { "id": "a" } ] }""", "entry of operator 'a' has no 'version'")]
    [InlineData("""{ "formatVersion": 1, "pipeline": "p", "operators": [ { "id": "a", "version": 1, "kind": "map", "inputs": [] }, { "id": "a", "version": 1, "kind": "map", "inputs": [] } ] }""", "lists operator 'a' twice")]
    [InlineData("""{ "formatVersion": "one", "pipeline": "p", "operators": [] }""", "wrong type")]
    public void Manifest_parse_errors_say_what_is_wrong(string json, string message)
    {
        var e = Assert.Throws<FormatException>(() => PipelineManifest.Parse(json));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Windowed_results_and_keyed_state_behave()
    {
        var state = new PipelineDsl.KeyedState<long>();
        state.Reset(exists: false, value: 99);
        Assert.False(state.Exists);
        Assert.Equal(0, state.Value);
        Assert.False(state.IsChanged);
        state.Update(5);
        Assert.True(state.Exists);
        Assert.True(state.IsChanged);
        state.Remove();
        Assert.False(state.Exists);
        Assert.True(state.IsChanged);
        Assert.Equal("[3..8] k: 7", new PipelineDsl.Windowed<string, int>("k", 7, 3, 8).ToString());
    }
}
