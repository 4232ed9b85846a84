using System.Globalization;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests.Golden;

/// <summary>
/// Golden checkpoints: for each scenario (together they use every kind of stateful operator), a checkpoint
/// written by a released build after some batches, the input of every batch, and the output of every batch of
/// an uninterrupted run by that same build. A later build restores the checkpoint, runs the remaining batches
/// and must produce exactly the stored output (GoldenCheckpointTests). The files are written once per
/// checkpoint format by tools/GoldenWriter and never regenerated.
/// </summary>
/// <remarks>
/// Each batch is one <see cref="PipelineRunner.RunAsync"/> in <see cref="TriggerMode.AvailableNow"/> over the
/// input added for it (as in the event-time tests), so batch boundaries do not depend on timing. Records are
/// kept as text: a scenario parses its input lines and prints its output records, so the stored files do not
/// depend on any code that could change with the build under test.
/// </remarks>
public abstract class GoldenScenario
{
    /// <summary>Every scenario, by name (the folder name under Golden/vN).</summary>
    public static IReadOnlyList<GoldenScenario> All { get; } = new GoldenScenario[]
    {
        new RunningTotalsScenario(), new WordsScenario(), new EnrichScenario(), new EventTimeScenario(), new IntervalJoinScenario(),
    };

    public abstract string Name { get; }

    /// <summary>Batches of the uninterrupted run (and of the expected output).</summary>
    public virtual int Batches => 12;

    /// <summary>Batches the stored checkpoint holds (0 … StoredBatches-1).</summary>
    public virtual int StoredBatches => 7;

    /// <summary>The input of every batch as (batch, source id, partition, record text), made from a fixed seed.</summary>
    public abstract IEnumerable<(int Batch, string Source, int Partition, string Record)> MakeInput();

    /// <summary>Adds one input line to the scenario's sources.</summary>
    protected abstract void Add(string source, int partition, string record);

    /// <summary>Runs on <paramref name="options"/>' checkpoint over what was added; returns the output as (batch id, sink id, record text).</summary>
    protected abstract Task<IReadOnlyList<(long Batch, string Sink, string Record)>> RunAsync(PipelineRunnerOptions options);

    /// <summary>Adds the input of <paramref name="batch"/> without running (to rebuild the sources a checkpoint read).</summary>
    public void Feed(int batch, IEnumerable<(int Batch, string Source, int Partition, string Record)> input)
    {
        foreach (var (b, source, partition, record) in input)
        {
            if (b == batch) Add(source, partition, record);
        }
    }

    /// <summary>Runs over what was fed (restoring the checkpoint first); returns the output with the runtime's batch ids.</summary>
    public Task<IReadOnlyList<(long Batch, string Sink, string Record)>> RunAsync(string checkpoint) => RunAsync(Options(checkpoint));

    /// <summary>
    /// The state backend the scenario runs on: null for <see cref="StateBackend.Default"/>. A folder of golden
    /// checkpoints written on RocksDB (its name ends in <c>-rocksdb</c>) is restored on RocksDB, whatever the default.
    /// </summary>
    public StateBackend? Backend { get; set; }

    private PipelineRunnerOptions Options(string checkpoint) => new()
    {
        CheckpointDirectory = checkpoint,
        Trigger = TriggerMode.AvailableNow,
        CheckpointInterval = 3,
        Parallelism = 1,
        StateBackend = Backend ?? StateBackend.Default,
    };

    /// <summary>Feeds <paramref name="input"/> of batch <paramref name="batch"/> and runs it; returns "batch\tsink\trecord" lines.</summary>
    public async Task<IReadOnlyList<string>> RunBatchAsync(string checkpoint, int batch, IEnumerable<(int Batch, string Source, int Partition, string Record)> input, bool run = true)
    {
        foreach (var (b, source, partition, record) in input)
        {
            if (b == batch) Add(source, partition, record);
        }

        if (!run) return Array.Empty<string>();
        var output = await RunAsync(Options(checkpoint));
        return output.Select(o => $"{batch}\t{o.Sink}\t{o.Record}").ToList();
    }

    /// <summary>A fresh instance of the same scenario (sources empty).</summary>
    public GoldenScenario Fresh(StateBackend? backend = null)
    {
        var fresh = (GoldenScenario)Activator.CreateInstance(GetType())!;
        fresh.Backend = backend;
        return fresh;
    }

    protected static string I(long v) => v.ToString(CultureInfo.InvariantCulture);

    protected static long L(string s) => long.Parse(s, CultureInfo.InvariantCulture);

    /// <summary>Collects a sink's records as text, in the order written.</summary>
    protected sealed class TextSink<T>(string id, Func<T, string> format, List<(long, string, string)> into) : ISinkConnector<T>
    {
        public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
        {
            lock (into)
            {
                foreach (var r in records) into.Add((batchId, id, format(r)));
            }

            return Task.CompletedTask;
        }
    }
}

/// <summary>update-state with an idle timeout and an OnTimeout result, after a filter and a map.</summary>
public sealed class RunningTotalsScenario : GoldenScenario
{
    private readonly MemorySource<Event> _events = new(2);

    public override string Name => "running-totals";

    public override IEnumerable<(int, string, int, string)> MakeInput()
    {
        var random = new Random(101);
        for (int b = 0; b < Batches; b++)
        {
            for (int i = 0; i < 40; i++)
                yield return (b, "events", random.Next(2), $"u{random.Next(b < 6 ? 12 : 6)},{random.Next(-3, 40)}");
        }
    }

    protected override void Add(string source, int partition, string record)
    {
        var f = record.Split(',');
        _events.Add(partition, new Event(f[0], L(f[1])));
    }

    protected override async Task<IReadOnlyList<(long, string, string)>> RunAsync(PipelineRunnerOptions options)
    {
        var output = new List<(long, string, string)>();
        await new PipelineRunner(RunningTotals.Definition, options)
            .BindSource(RunningTotals.Events(), _events)
            .BindSink(RunningTotals.Out(), new TextSink<Total?>("out", t => t is null ? "null" : $"{t.User},{I(t.Sum)},{I(t.Count)}", output))
            .RunAsync();
        return output;
    }
}

/// <summary>union, flat-map, map, reduce, and sliding and hopping batch windows.</summary>
public sealed class WordsScenario : GoldenScenario
{
    private static readonly string[] Vocabulary = { "x", "y", "z", "w", "v" };
    private readonly MemorySource<Line> _a = new();
    private readonly MemorySource<Line> _b = new();

    public override string Name => "words";

    public override IEnumerable<(int, string, int, string)> MakeInput()
    {
        var random = new Random(202);
        for (int b = 0; b < Batches; b++)
        {
            for (int i = 0; i < 6; i++)
            {
                string line = string.Join(' ', Enumerable.Range(0, random.Next(1, 6)).Select(_ => Vocabulary[random.Next(Vocabulary.Length)]));
                yield return (b, random.Next(2) == 0 ? "a" : "b", 0, line);
            }
        }
    }

    protected override void Add(string source, int partition, string record) => (source == "a" ? _a : _b).Add(partition, new Line(record));

    protected override async Task<IReadOnlyList<(long, string, string)>> RunAsync(PipelineRunnerOptions options)
    {
        var output = new List<(long, string, string)>();
        static string W(Windowed<string, WordCount> w) => $"[{I(w.WindowStart)}..{I(w.WindowEnd)}] {w.Key}={I(w.Value.Count)}";
        await new PipelineRunner(Words.Definition, options)
            .BindSource(Words.A(), _a)
            .BindSource(Words.B(), _b)
            .BindSink(Words.BatchCounts(), new TextSink<WordCount>("batch-counts", w => $"{w.Word}={I(w.Count)}", output))
            .BindSink(Words.Windows(), new TextSink<Windowed<string, WordCount>>("windows", W, output))
            .BindSink(Words.Hops(), new TextSink<Windowed<string, WordCount>>("hops", W, output))
            .RunAsync();
        return output;
    }
}

/// <summary>A per-batch join of two sources, and a for-each-batch stage.</summary>
public sealed class EnrichScenario : GoldenScenario
{
    private readonly MemorySource<Order> _orders = new();
    private readonly MemorySource<Customer> _customers = new();

    public override string Name => "enrich";

    public override IEnumerable<(int, string, int, string)> MakeInput()
    {
        var random = new Random(303);
        for (int b = 0; b < Batches; b++)
        {
            for (int i = 0; i < 5; i++) yield return (b, "orders", 0, $"c{random.Next(6)},{random.Next(1, 100)}");
            for (int i = 0; i < 3; i++) yield return (b, "customers", 0, $"c{random.Next(6)},{(random.Next(2) == 0 ? "NO" : "SE")}");
        }
    }

    protected override void Add(string source, int partition, string record)
    {
        var f = record.Split(',');
        if (source == "orders") _orders.Add(partition, new Order(f[0], L(f[1])));
        else _customers.Add(partition, new Customer(f[0], f[1]));
    }

    protected override async Task<IReadOnlyList<(long, string, string)>> RunAsync(PipelineRunnerOptions options)
    {
        var output = new List<(long, string, string)>();
        await new PipelineRunner(Enrich.Definition, options)
            .BindSource(Enrich.Orders(), _orders)
            .BindSource(Enrich.Customers(), _customers)
            .BindSink(Enrich.Out(), new TextSink<Enriched>("out", e => $"{e.Customer},{e.Country},{I(e.Amount)}", output))
            .RunAsync();
        return output.OrderBy(o => o.Item1).ThenBy(o => o.Item3, StringComparer.Ordinal).ToList(); // a join's output order within a batch is not specified
    }
}

/// <summary>A watermark, tumbling and hopping event-time windows and session windows, with late records.</summary>
public sealed class EventTimeScenario : GoldenScenario
{
    private readonly MemorySource<Reading> _readings = new();

    public override string Name => "event-time";

    public override IEnumerable<(int, string, int, string)> MakeInput()
    {
        var random = new Random(404);
        long clock = 0;
        for (int b = 0; b < Batches; b++)
        {
            for (int i = 0; i < 12; i++)
            {
                clock += random.Next(0, 250);
                long time = Math.Max(0, clock - random.Next(0, 1800)); // out of order, some of it late
                yield return (b, "readings", 0, $"s{random.Next(3)},{I(time)},{random.Next(1, 10)}");
            }
        }
    }

    protected override void Add(string source, int partition, string record)
    {
        var f = record.Split(',');
        _readings.Add(partition, new Reading(f[0], L(f[1]), L(f[2])));
    }

    protected override async Task<IReadOnlyList<(long, string, string)>> RunAsync(PipelineRunnerOptions options)
    {
        var output = new List<(long, string, string)>();
        static string W(EventWindow<string, Reading> w) => $"{w.Key}[{I(w.Start)},{I(w.End)})={I(w.Value.Value)}";
        await new PipelineRunner(EventTimePipeline.Definition, options)
            .BindSource(EventTimePipeline.Readings(), _readings)
            .BindSink(EventTimePipeline.TumblingOut(), new TextSink<EventWindow<string, Reading>>("tumbling-out", W, output))
            .BindSink(EventTimePipeline.HoppingOut(), new TextSink<EventWindow<string, Reading>>("hopping-out", W, output))
            .BindSink(EventTimePipeline.SessionsOut(), new TextSink<EventWindow<string, Reading>>("sessions-out", W, output))
            .RunAsync();
        return output;
    }
}

/// <summary>Two watermarks and an interval stream join.</summary>
public sealed class IntervalJoinScenario : GoldenScenario
{
    private readonly MemorySource<PurchaseOrder> _orders = new();
    private readonly MemorySource<Payment> _payments = new();

    public override string Name => "interval-join";

    public override IEnumerable<(int, string, int, string)> MakeInput()
    {
        var random = new Random(505);
        long id = 0;
        var open = new List<(long Id, long Time)>();
        for (int b = 0; b < Batches; b++)
        {
            long now = b * 600L;
            for (int i = 0; i < 4; i++)
            {
                var order = (id++, now + random.Next(0, 600));
                open.Add(order);
                yield return (b, "orders", 0, $"{I(order.Item1)},{I(order.Item2)}");
            }

            for (int i = 0; i < 4 && open.Count > 0; i++)
            {
                var paid = open[random.Next(open.Count)];
                yield return (b, "payments", 0, $"{I(paid.Id)},{I(paid.Time + random.Next(-100, 1400))}");
            }
        }
    }

    protected override void Add(string source, int partition, string record)
    {
        var f = record.Split(',');
        if (source == "orders") _orders.Add(partition, new PurchaseOrder(L(f[0]), L(f[1])));
        else _payments.Add(partition, new Payment(L(f[0]), L(f[1])));
    }

    protected override async Task<IReadOnlyList<(long, string, string)>> RunAsync(PipelineRunnerOptions options)
    {
        var output = new List<(long, string, string)>();
        await new PipelineRunner(IntervalJoinPipeline.Definition, options)
            .BindSource(IntervalJoinPipeline.Orders(), _orders)
            .BindSource(IntervalJoinPipeline.Payments(), _payments)
            .BindSink(IntervalJoinPipeline.Out(), new TextSink<string>("out", s => s, output))
            .RunAsync();
        return output.OrderBy(o => o.Item1).ThenBy(o => o.Item3, StringComparer.Ordinal).ToList();
    }
}
