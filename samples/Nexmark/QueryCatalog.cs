using PipelineDsl;
using PipelineDsl.Execution;
using PipelineDsl.Graph;
using PipelineDsl.Nexmark;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Samples.Nexmark;

/// <summary>One query: its name, what it computes, and how to wire it to a source and an output.</summary>
/// <param name="Name">q0, q1, ...</param>
/// <param name="Description">One line.</param>
/// <param name="Definition">The generated operator graph.</param>
/// <param name="CreateRunner">Binds the events source and the sink: CSV files in a directory, or a counting blackhole when null.</param>
public sealed record Query(string Name, string Description, PipelineDefinition Definition,
    Func<PipelineRunnerOptions, ISourceConnector<Event>, string?, (PipelineRunner Runner, ICountingSink Sink)> CreateRunner);

/// <summary>Counts what reaches the sink (Flink's blackhole sink, used by the benchmark).</summary>
public interface ICountingSink
{
    /// <summary>Rows received.</summary>
    long Rows { get; }
}

/// <summary>The queries this sample implements, by name.</summary>
public static class QueryCatalog
{
    public static IReadOnlyList<Query> All { get; } = new[]
    {
        Make("q0", "pass-through of every bid", Q0.Definition, Q0.Events(), Q0.Out()),
        Make("q1", "currency conversion", Q1.Definition, Q1.Events(), Q1.Out()),
        Make("q2", "selection: bids on every 123rd auction", Q2.Definition, Q2.Events(), Q2.Out()),
        Make("q3", "local item suggestion: unbounded auction-person join", Q3.Definition, Q3.Events(), Q3.Out()),
        Make("q4", "average closing price per category", Q4.Definition, Q4.Events(), Q4.Out()),
        Make("q5", "hot items: hopping 10 s / 2 s windows", Q5.Definition, Q5.Events(), Q5.Out()),
        Make("q6", "average selling price by seller (last 11 closed auctions)", Q6.Definition, Q6.Events(), Q6.Out()),
        Make("q7", "highest bid per 10 s window", Q7.Definition, Q7.Events(), Q7.Out()),
        Make("q8", "monitor new users: 10 s window join", Q8.Definition, Q8.Events(), Q8.Out()),
        Make("q9", "winning bids", Q9.Definition, Q9.Events(), Q9.Out()),
        Make("q10", "log to file system: bids in CSV files partitioned by (dt, hm)", Q10.Definition, Q10.Events(), Q10.Out(), Q10.Files),
        Make("q11", "user sessions: 10 s gap", Q11.Definition, Q11.Events(), Q11.Out()),
        Make("q12", "bids per bidder in 10 s windows of processing time (batch time)", Q12.Definition, Q12.Events(), Q12.Out()),
        Make("q13", "bounded side-input join", Q13.Definition, Q13.Events(), Q13.Out()),
        Make("q14", "calculation", Q14.Definition, Q14.Events(), Q14.Out()),
        Make("q15", "bidding statistics per day", Q15.Definition, Q15.Events(), Q15.Out()),
        Make("q16", "channel statistics per day", Q16.Definition, Q16.Events(), Q16.Out()),
        Make("q17", "auction statistics per day", Q17.Definition, Q17.Events(), Q17.Out()),
        Make("q18", "last bid per bidder and auction", Q18.Definition, Q18.Events(), Q18.Out()),
        Make("q19", "top 10 bids per auction by price", Q19.Definition, Q19.Events(), Q19.Out()),
        Make("q20", "bids expanded with their category-10 auction: unbounded join", Q20.Definition, Q20.Events(), Q20.Out()),
        Make("q21", "add channel id", Q21.Definition, Q21.Events(), Q21.Out()),
        Make("q22", "get URL directories", Q22.Definition, Q22.Events(), Q22.Out()),
        Make("q23", "bids by sellers, with the person and each of their auctions: three-way join", Q23.Definition, Q23.Events(), Q23.Out()),
    };

    /// <summary>The query named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No such query; the message lists them.</exception>
    public static Query Get(string name) =>
        All.FirstOrDefault(q => string.Equals(q.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"There is no query '{name}'. The queries are: {string.Join(", ", All.Select(q => q.Name))}.", nameof(name));

    /// <param name="files">The sink that writes a query's output into a directory: by default one file per batch (<see cref="FileSink{T}"/>).</param>
    private static Query Make<TRow>(string name, string description, PipelineDefinition definition, Source<Event> events, Sink<TRow> sink,
        Func<string, ISinkConnector<TRow>>? files = null) where TRow : IRow =>
        new(name, description, definition, (options, source, output) =>
        {
            ISinkConnector<TRow> connector;
            ICountingSink counter;
            if (output is null)
            {
                var blackhole = new BlackholeSink<TRow>();
                connector = blackhole;
                counter = blackhole;
            }
            else
            {
                var counting = new CountingFileSink<TRow>(files?.Invoke(output) ?? new FileSink<TRow>(output, r => r.ToCsv()));
                connector = counting;
                counter = counting;
            }

            var runner = new PipelineRunner(definition, options).BindSource(events, source).BindSink(sink, connector);
            return (runner, counter);
        });

    private sealed class BlackholeSink<TRow> : ISinkConnector<TRow>, ICountingSink
    {
        public long Rows { get; private set; }

        public Task WriteBatchAsync(long batchId, IReadOnlyList<TRow> records, CancellationToken cancellationToken)
        {
            Rows += records.Count;
            return Task.CompletedTask;
        }
    }

    private sealed class CountingFileSink<TRow>(ISinkConnector<TRow> files) : ISinkConnector<TRow>, ICountingSink where TRow : IRow
    {
        private readonly ISinkConnector<TRow> _files = files;

        public long Rows { get; private set; }

        public async Task WriteBatchAsync(long batchId, IReadOnlyList<TRow> records, CancellationToken cancellationToken)
        {
            await _files.WriteBatchAsync(batchId, records, cancellationToken);
            Rows += records.Count;
        }
    }
}
