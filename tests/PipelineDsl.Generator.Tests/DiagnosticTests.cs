using Microsoft.CodeAnalysis;
using static PipelineDsl.Generator.Tests.DiagnosticAssert;

namespace PipelineDsl.Generator.Tests;

/// <summary>Every diagnostic: its ID, its message (which says how to fix it) and its location.</summary>
public class DiagnosticTests
{
    [Fact]
    public void PDSL001_pipeline_class_not_partial() => Single(Header + """
        [Pipeline("p")]
        public static class [|P|]
        {
        }
        """, "PDSL001", "'P' must be declared 'partial' so that PipelineDsl can generate its wiring: add the 'partial' modifier to 'P'");

    [Fact]
    public void PDSL001_containing_type_not_partial() => Single(Header + """
        public static class [|Outer|]
        {
            [Pipeline("p")]
            public static partial class P { }
        }
        """, "PDSL001", "'Outer' must be declared 'partial' so that PipelineDsl can generate its wiring: add the 'partial' modifier to 'Outer'");

    [Fact]
    public void PDSL002_operator_id_empty() => Single(InPipeline("""
            [Map([|""|], From = "clicks")]
            public static string M(Click c) => c.Url;
        """), "PDSL002", "The map 'M' has no id: give it a stable id, for example [Map(\"my-id\")]");

    [Fact]
    public void PDSL002_pipeline_id_missing() => Single(Header + """
        [Pipeline([|null|])]
        public static partial class P { }
        """, "PDSL002", "The pipeline 'P' has no id: give it a stable id, for example [Pipeline(\"my-id\")]");

    [Fact]
    public void PDSL003_malformed_id() => Single(InPipeline("""
            [Map([|"has space"|], From = "clicks")]
            public static string M(Click c) => c.Url;
        """), "PDSL003", "The id \"has space\" is malformed: use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit");

    [Fact]
    public void PDSL004_version_below_one() => Single(InPipeline("""
            [Map("m", From = "clicks", [|Version = 0|])]
            public static string M(Click c) => c.Url;
        """), "PDSL004", "The version of 'm' is 0: versions start at 1");

    [Fact]
    public void PDSL005_stage_method_of_the_wrong_shape() => Single(InPipeline("""
            [Map("m", From = "clicks")]
            public static void [|M|](Click c) { }
        """), "PDSL005", "The map method 'M' has the wrong shape: it must be 'static TOut Name(TIn value)' or 'static TOut Name(TIn value, BatchTime time)'");

    [Fact]
    public void PDSL005_map_whose_second_parameter_is_not_the_batch_time() => Single(InPipeline("""
            [Map("m", From = "clicks")]
            public static string [|M|](Click c, long time) => c.Url;
        """), "PDSL005", "The map method 'M' has the wrong shape: it must be 'static TOut Name(TIn value)' or 'static TOut Name(TIn value, BatchTime time)'");

    [Fact]
    public void PDSL005_instance_method() => Single(InPipeline("""
            [Filter("f", From = "clicks")]
            public bool [|F|](Click c) => true;
        """).Replace("public static partial class P", "public partial class P"), "PDSL005", "The filter method 'F' has the wrong shape: it must be 'static bool Name(T value)'");

    [Fact]
    public void PDSL005_update_state_key_parameter_type() => Single(InPipeline("""
            [UpdateState("u", From = "clicks", Key = nameof(Click.UserId))]
            public static long [|U|](long key, Click c, KeyedState<long> state) => 0;
        """), "PDSL005", "The update-state method 'U' has the wrong shape: it must be 'static TOut Name(string key, TIn value, KeyedState<TState> state)', since its key 'UserId' is a string");

    [Fact]
    public void PDSL006_source_with_a_body() => Single(Header + """
        [Pipeline("p")]
        public static partial class P
        {
            [Source("s")]
            public static Source<int> [|S|]() => null!;
        }
        """, "PDSL006", "'S' must be declared 'static partial Source<T> S()' without a body: the generator implements it");

    [Fact]
    public void PDSL007_keyed_stage_without_key() => Single(InPipeline("""
            [[|Reduce("r", From = "clicks")|]]
            public static Click R(Click a, Click b) => a;
        """), "PDSL007", "The keyed stage 'r' has no Key: set Key = nameof(Demo.Click.Member) to the property or field that holds the key");

    [Fact]
    public void PDSL008_key_names_no_member() => Single(InPipeline("""
            [Reduce("r", From = "clicks", [|Key = "Nope"|])]
            public static Click R(Click a, Click b) => a;
        """), "PDSL008", "The key 'Nope' of 'r' is not a readable instance property or field of 'Demo.Click': name one, for example with nameof(Demo.Click.Member)");

    [Fact]
    public void PDSL009_state_type_not_a_contract() => Single(InPipeline("""
            [UpdateState("u", From = "clicks", Key = nameof(Click.UserId))]
            public static long [|U|](string key, Click c, KeyedState<Click> state) => 0;
        """), "PDSL009", "'Demo.Click', the state type of stateful operator 'u', cannot be checkpointed: mark it [StateContract] and give its members [Field(n)] keys, or use a primitive, string, enum, DateTime, TimeSpan or Guid");

    [Fact]
    public void PDSL010_state_contract_not_partial() => Single(Header + """
        [StateContract]
        public record struct [|S|]([property: Field(0)] long A);
        """, "PDSL010", "The state contract 'S' must be declared 'partial' so that PipelineDsl can generate its formatter: add the 'partial' modifier");

    [Fact]
    public void PDSL011_duplicate_field_key() => Single(Header + """
        [StateContract]
        public partial class S
        {
            [Field(0)] public long A { get; set; }
            [Field([|0|])] public long B { get; set; }
        }
        """, "PDSL011", "Field key 0 is used by both 'A' and 'B' in 'S': give every field its own key");

    [Fact]
    public void PDSL012_negative_field_key() => Single(Header + """
        [StateContract]
        public partial class S
        {
            [Field([|-1|])] public long A { get; set; }
        }
        """, "PDSL012", "The field key of 'S.A' is -1: keys are 0 or more");

    [Fact]
    public void PDSL013_field_type_not_serializable() => Single(Header + """
        [StateContract]
        public partial class S
        {
            [Field(0)] public System.IO.Stream? [|Body|] { get; set; }
        }
        """, "PDSL013", "The field 'S.Body' has type 'System.IO.Stream', which cannot be checkpointed: use a primitive, string, byte[], enum, DateTime, DateTimeOffset, TimeSpan, Guid, a state contract, a Nullable of those, or an array, List or Dictionary of them");

    [Fact]
    public void PDSL014_contract_cannot_be_constructed() => Single(Header + """
        [StateContract]
        public partial class [|S|]
        {
            public S(long a, long b) { A = a; }
            [Field(0)] public long A { get; }
        }
        """, "PDSL014", "The state contract 'S' cannot be rebuilt from a checkpoint: the members 'A' have no setter and no constructor parameter of the same name. Give it a parameterless constructor and settable (or init) fields, or a constructor whose parameters match the fields by name.");

    [Fact]
    public void PDSL015_member_without_field_key() => Single(Header + """
        [StateContract]
        public partial class S
        {
            [Field(0)] public long A { get; set; }
            public long [|B|] { get; set; }
            public long Computed => A * 2;
        }
        """, "PDSL015", "'S.B' has no [Field(n)] key, so its value is not checkpointed and is lost on recovery: give it a key, or make it a computed property", DiagnosticSeverity.Warning);

    [Fact]
    public void PDSL016_generic_pipeline() => Single(Header + """
        [Pipeline("p")]
        public partial class [|P|]<T>
        {
        }
        """, "PDSL016", "'P' is generic: a pipeline class (and the types that contain it) must not have type parameters");

    [Fact]
    public void PDSL017_two_operator_attributes() => Single(InPipeline("""
            [Map("a", From = "clicks")]
            [Filter("b", From = "clicks")]
            public static bool [|M|](Click c) => true;
        """), "PDSL017", "'M' has more than one PipelineDsl operator attribute: declare each operator on its own method");

    [Fact]
    public void PDSL018_operator_outside_a_pipeline() => Single(Header + """
        public static class NotAPipeline
        {
            [Map("m", From = "clicks")]
            public static string [|M|](Click c) => c.Url;
        }
        """, "PDSL018", "'M' declares an operator but 'NotAPipeline' has no [Pipeline] attribute: add [Pipeline(\"my-pipeline\")] to 'NotAPipeline'");

    [Fact]
    public void PDSL019_window_length_not_a_multiple_of_slide() => Single(InPipeline("""
            [Window("w", From = "clicks", Key = nameof(Click.UserId), [|LengthBatches = 5|], SlideBatches = 2)]
            public static Click W(Click a, Click b) => a;
        """), "PDSL019", "The window 'w' has LengthBatches = 5 and SlideBatches = 2: the slide must be 1 or more and the length a positive multiple of the slide");

    [Fact]
    public void PDSL020_negative_idle_timeout() => Single(InPipeline("""
            [UpdateState("u", From = "clicks", Key = nameof(Click.UserId), [|IdleTimeoutBatches = -1|])]
            public static long U(string key, Click c, KeyedState<long> state) => 0;
        """), "PDSL020", "IdleTimeoutBatches of 'u' is -1: use 0 (never time out) or more batches");

    [Fact]
    public void PDSL021_on_timeout_method_missing() => Single(InPipeline("""
            [UpdateState("u", From = "clicks", Key = nameof(Click.UserId), IdleTimeoutBatches = 3, [|OnTimeout = "Gone"|])]
            public static long U(string key, Click c, KeyedState<long> state) => 0;
        """), "PDSL021", "OnTimeout of 'u' names 'Gone', which is not a method 'static long Gone(string key, long state)' of the pipeline class");

    [Fact]
    public void PDSL021_on_timeout_method_with_wrong_signature() => Single(InPipeline("""
            [UpdateState("u", From = "clicks", Key = nameof(Click.UserId), IdleTimeoutBatches = 3, [|OnTimeout = nameof(Gone)|])]
            public static long U(string key, Click c, KeyedState<long> state) => 0;

            public static long Gone(string key) => 0;
        """), "PDSL021", "OnTimeout of 'u' names 'Gone', which is not a method 'static long Gone(string key, long state)' of the pipeline class (a method of that name exists but its signature differs)");

    [Fact]
    public void PDSL022_two_pipelines_with_one_id() => Single(Header + """
        [Pipeline("same")]
        public static partial class A { }

        [Pipeline([|"same"|])]
        public static partial class B { }
        """, "PDSL022", "The pipeline id \"same\" is declared by both 'Tests.A' and 'Tests.B': give each pipeline its own id");

    private const string CounterV3 = """
            [UpdateState("counter", From = "clicks", Key = nameof(Click.UserId), Version = 3)]
            public static long Count(string user, Click c, KeyedState<long> state) { state.Update(state.Value + 1); return state.Value; }

            [Sink("out", From = "counter")]
            public static partial Sink<long> Out();
        """;

    [Fact]
    public void PDSL023_migration_names_no_update_state_operator() => Single(InPipeline(CounterV3 + """
            [StateMigration([|"countr"|], FromVersion = 2)]
            public static long Up(int old) => old;
        """), "PDSL023", "[StateMigration] names \"countr\", which is not an update-state operator of pipeline 'p': did you mean \"counter\"?");

    [Fact]
    public void PDSL023_discard_state_names_no_stateful_operator() => Single(InPipeline(CounterV3).Replace("[Pipeline(\"p\")]", "[Pipeline(\"p\")]\n[DiscardState([|\"clicks\"|], FromVersion = 1)]"),
        "PDSL023", "[DiscardState] names \"clicks\", which is not a stateful operator of pipeline 'p': its elements are \"counter\"");

    [Fact]
    public void PDSL024_from_version_not_older_than_the_operator() => Single(InPipeline(CounterV3 + """
            [StateMigration("counter", [|FromVersion = 3|])]
            public static long Up(long old) => old;
        """), "PDSL024", "FromVersion of [StateMigration] for 'counter' is 3: it must be an older version of the operator, from 1 to 2 (its current Version is 3)");

    [Fact]
    public void PDSL025_migration_method_of_the_wrong_shape() => Single(InPipeline(CounterV3 + """
            [StateMigration("counter", FromVersion = 2)]
            public static long [|Up|](System.IO.Stream old) => 0;
        """), "PDSL025", "The migration method 'Up' has the wrong shape: it must be 'static TNext Up(TPrevious state)', and TPrevious must be a state contract or a primitive, so that the old bytes can be read");

    [Fact]
    public void PDSL026_migration_chain_with_a_gap() => Single(InPipeline(CounterV3 + """
            [StateMigration("counter", FromVersion = 1)]
            public static int [|Up1|](int old) => old;
        """), "PDSL026", "The migrations of 'counter' do not chain: there is a migration from version 1 ('Up1') but none from version 2, so state of version 1 cannot reach version 3");

    [Fact]
    public void PDSL026_migration_chain_with_mismatched_types() => Single(InPipeline(CounterV3 + """
            [StateMigration("counter", FromVersion = 1)]
            public static int Up1(int old) => old;

            [StateMigration("counter", FromVersion = 2)]
            public static long [|Up2|](string old) => 0;
        """), "PDSL026", "The migrations of 'counter' do not chain: the migration from version 1 ('Up1') returns 'int' but the migration from version 2 ('Up2') takes 'string'");

    [Fact]
    public void PDSL026_last_migration_must_return_the_current_state_type() => Single(InPipeline(CounterV3 + """
            [StateMigration("counter", FromVersion = 2)]
            public static int [|Up2|](int old) => old;
        """), "PDSL026", "The migrations of 'counter' do not chain: the migration from version 2 ('Up2') returns 'int' but the state of version 3 is 'long'");

    [Fact]
    public void PDSL027_two_migrations_from_one_version() => Single(InPipeline(CounterV3 + """
            [StateMigration("counter", FromVersion = 2)]
            public static long Up(int old) => old;

            [StateMigration("counter", FromVersion = 2)]
            public static long [|Again|](int old) => old;
        """), "PDSL027", "'counter' has two migrations from version 2: keep one");

    [Fact]
    public void PDSL028_retired_operator_still_exists() => Single(InPipeline(CounterV3).Replace("[Pipeline(\"p\")]", "[Pipeline(\"p\")]\n[RetiredOperator([|\"counter\"|])]"),
        "PDSL028", "'counter' is declared retired but the pipeline still has an operator with that id: remove the [RetiredOperator] or the operator");

    [Fact]
    public void PDSL100_duplicate_operator_id() => Single(InPipeline("""
            [Map("m", From = "clicks")]
            public static string M1(Click c) => c.Url;

            [Map([|"m"|], From = "clicks")]
            public static string M2(Click c) => c.Url;
        """), "PDSL100", "The id \"m\" is used by more than one element of pipeline 'p': give each its own id");

    [Fact]
    public void PDSL101_from_names_no_element_with_suggestion() => Single(InPipeline("""
            [Map("m", [|From = "clikcs"|])]
            public static string M(Click c) => c.Url;
        """), "PDSL101", "'m' reads from \"clikcs\", which is not an element of pipeline 'p': did you mean \"clicks\"?");

    [Fact]
    public void PDSL101_from_names_no_element_lists_elements() => Single(InPipeline("""
            [Map("m", [|From = "orders"|])]
            public static string M(Click c) => c.Url;
        """), "PDSL101", "'m' reads from \"orders\", which is not an element of pipeline 'p': its elements are \"clicks\", \"m\"");

    [Fact]
    public void PDSL102_input_type_differs_from_upstream_output() => Single(InPipeline("""
            [Map("m", [|From = "clicks"|])]
            public static string M(ClickEvent e) => e.Url;
        """), "PDSL102", "'m' takes 'Demo.ClickEvent' but its input \"clicks\" produces 'Demo.Click': change the parameter type or read from another element");

    [Fact]
    public void PDSL103_cycle() => Single(InPipeline("""
            [Map("a", From = "b")]
            public static Click A(Click c) => c;

            [Map("b", [|From = "a"|])]
            public static Click B(Click c) => c;

            [Sink("out", From = "a")]
            public static partial Sink<Click> Out();
        """), "PDSL103", "Pipeline 'p' has a cycle: b -> a -> b. A pipeline must be acyclic: make one of these read from a source or an earlier stage.");

    [Fact]
    public void PDSL104_stage_without_input() => Single(InPipeline("""
            [Map("m")]
            public static string [|M|](Click c) => c.Url;
        """), "PDSL104", "'m' has no input: set From = \"id\" to the id of a source or stage");

    [Fact]
    public void PDSL104_sink_without_input() => Single(InPipeline("""
            [Sink("out")]
            public static partial Sink<Click> [|Out|]();
        """), "PDSL104", "'out' has no input: set From = \"id\" to the id of a source or stage");

    [Fact]
    public void PDSL105_output_reaches_no_sink() => Single(InPipeline("""
            [Map("m", From = "clicks")]
            public static string [|M|](Click c) => c.Url;
        """), "PDSL105", "The output of 'm' reaches no sink: add a [Sink] or [ForEachBatch] that reads from it, or remove it", DiagnosticSeverity.Warning);

    [Fact]
    public void PDSL106_reads_from_a_sink() => Single(InPipeline("""
            [Sink("out", From = "clicks")]
            public static partial Sink<Click> Out();

            [Map("m", [|From = "out"|])]
            public static string M(Click c) => c.Url;
        """), "PDSL106", "'m' reads from \"out\", which is a sink: sinks produce no records, read from the sink's input instead");

    [Fact]
    public void PDSL107_join_keys_of_different_types() => Single(InPipeline("""
            [Source("totals")]
            public static partial Source<UserTotals> Totals();

            [Join("j", Left = "clicks", Right = "totals", LeftKey = nameof(Click.UserId), [|RightKey = nameof(UserTotals.Clicks)|])]
            public static string J(Click c, UserTotals t) => c.Url;
        """), "PDSL107", "The join 'j' has a left key of type 'string' and a right key of type 'long': both keys must have the same type");

    [Fact]
    public void PDSL108_union_with_one_input() => Single(InPipeline("""
            [Union([|"u"|], "clicks")]
            public static partial Stream<Click> U();
        """), "PDSL108", "The union 'u' has 1 input(s): list two or more element ids");

    [Fact]
    public void PDSL109_pipeline_without_source() => Single(Header + """
        [Pipeline("p")]
        public static partial class [|P|]
        {
        }
        """, "PDSL109", "Pipeline 'p' declares no [Source]: it will never receive a record", DiagnosticSeverity.Warning);

    [Fact]
    public void Every_descriptor_has_a_test_and_a_fix_in_its_message()
    {
        var tested = typeof(DiagnosticTests).Assembly.GetTypes().SelectMany(t => t.GetMethods())
            .Select(m => m.Name.Split('_')[0]).Where(n => n.StartsWith("PDSL", StringComparison.Ordinal)).ToHashSet();
        var all = PipelineDsl.Generator.Diagnostics.DiagnosticDescriptors.All.ToList();
        // PDSL000 reports a crash of the generator itself, which no valid or invalid input should cause.
        var untested = all.Where(d => d.Id != "PDSL000" && !tested.Contains(d.Id)).Select(d => d.Id).ToList();
        Assert.Empty(untested);
        Assert.Equal(all.Count, all.Select(d => d.Id).Distinct().Count());
        Assert.All(all, d => Assert.Matches("^PDSL[0-2][0-9][0-9]$", d.Id));
    }

    [Fact]
    public void A_pipeline_with_errors_still_implements_its_declarations()
    {
        // Only our diagnostic should appear, not a cascade of CS8795 "partial method must have an implementation".
        var result = GeneratorHarness.Run(GeneratorHarness.Compilation((TestPipelines.Records, "Records.cs"), (InPipeline("""
                [Map("m", From = "nowhere")]
                public static string M(Click c) => c.Url;

                [Sink("out", From = "m")]
                public static partial Sink<string> Out();
            """), "Test.cs")));
        Assert.Contains(result.GeneratorDiagnostics, d => d.Id == "PDSL101");
        Assert.DoesNotContain(result.CompileDiagnostics, d => d.Severity == DiagnosticSeverity.Error);
    }
}
