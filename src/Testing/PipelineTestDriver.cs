using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;
using PipelineDsl.Execution;
using PipelineDsl.Graph;

namespace PipelineDsl.Testing;

/// <summary>Options of a <see cref="PipelineTestDriver"/>.</summary>
public sealed class PipelineTestOptions
{
    /// <summary>A snapshot every this many batches (default 10), as in production: a crash restores from the newest one plus the commits' deltas.</summary>
    public int CheckpointInterval { get; set; } = 10;

    /// <summary>What to do with records a source cannot decode (default <see cref="BadRecordPolicy.Fail"/>).</summary>
    public BadRecordPolicy BadRecordPolicy { get; set; } = BadRecordPolicy.Fail;

    /// <summary>The driver's clock at the start (default 2026-01-01T00:00:00Z); it moves only with <see cref="PipelineTestDriver.AdvanceTime"/>.</summary>
    public DateTimeOffset StartTime { get; set; } = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The checkpoint to continue (for example one a test kept as its golden file); null: a new, empty one.</summary>
    public ICheckpointStore? Checkpoint { get; set; }
}

/// <summary>
/// Runs a generated pipeline in a unit test, one micro-batch per call, like Kafka Streams' <c>TopologyTestDriver</c>:
/// bind each source to a <see cref="TestInput{T}"/> and each sink to a <see cref="TestOutput{T}"/> through the typed
/// handles, add records, <see cref="RunBatch"/>, and read what each sink received. It is the real runtime (planner,
/// operators, checkpoint protocol) on an in-memory checkpoint, with one core and the driver's own clock, so the same
/// inputs give byte-identical outputs and checkpoints on every run. <see cref="Restart"/> stops cleanly and starts
/// again; <see cref="CrashAndRestore"/> drops the run as a SIGKILL after its last commit would and restores from the
/// checkpoint, so a test can assert exactly-once output across a crash at any batch.
/// </summary>
public sealed class PipelineTestDriver : IDisposable
{
    private readonly PipelineDefinition _definition;
    private readonly PipelineTestOptions _options;
    private readonly TestClock _clock;
    private readonly List<Action<PipelineRunner>> _bindings = new();
    private readonly HashSet<string> _bound = new(StringComparer.Ordinal);
    private readonly List<BatchProgress> _batches = new();
    private Run? _run;
    private PipelineRunner? _lastRunner;
    private int _identities;

    /// <summary>A driver for <paramref name="definition"/> (a generated <c>Definition</c>).</summary>
    public PipelineTestDriver(PipelineDefinition definition, PipelineTestOptions? options = null)
    {
        _definition = definition ?? throw new ArgumentNullException(nameof(definition));
        _options = options ?? new PipelineTestOptions();
        if (_options.CheckpointInterval < 1) throw new ArgumentException($"PipelineTestOptions.CheckpointInterval is {_options.CheckpointInterval}: it must be 1 or more.");
        _clock = new TestClock(_options.StartTime);
        Checkpoint = _options.Checkpoint ?? new InMemoryCheckpointStore();
    }

    /// <summary>The test's checkpoint: read it with <see cref="CheckpointReader"/>, or keep its files as golden files.</summary>
    public ICheckpointStore Checkpoint { get; }

    /// <summary>The driver's clock (plan and commit times in the checkpoint).</summary>
    public DateTimeOffset Now => _clock.GetUtcNow();

    /// <summary>
    /// How the current (or last) run began: whether it restored the checkpoint, from which snapshot, and how many commits'
    /// deltas it applied after it (null before the first batch).
    /// </summary>
    public RecoveryProgress? LastRecovery => _lastRunner?.Status.Recovery;

    /// <summary>Every batch run so far, replays during a restore included (<see cref="BatchProgress.Replayed"/>).</summary>
    public IReadOnlyList<BatchProgress> Batches => _batches;

    /// <summary>Binds <paramref name="source"/> to a new test input with <paramref name="partitions"/> partitions.</summary>
    public TestInput<T> Input<T>(Source<T> source, int partitions = 1)
    {
        if (source is null) throw new ArgumentNullException(nameof(source));
        if (partitions < 1) throw new ArgumentOutOfRangeException(nameof(partitions), "A test input has at least one partition.");
        Bind("source", source.Id);
        var input = new TestInput<T>(source.Id, partitions);
        _bindings.Add(runner => runner.BindSource(source, input.Connector));
        return input;
    }

    /// <summary>Binds <paramref name="sink"/> to a new test output.</summary>
    public TestOutput<T> Output<T>(Sink<T> sink)
    {
        if (sink is null) throw new ArgumentNullException(nameof(sink));
        Bind("sink", sink.Id);
        var output = new TestOutput<T>(sink.Id);
        _bindings.Add(runner => runner.BindSink(sink, output.Connector));
        return output;
    }

    private void Bind(string what, string id)
    {
        if (_run is not null) throw new InvalidOperationException($"Bind the {what} '{id}' before the first batch runs.");
        if (!_bound.Add(what + ":" + id)) throw new InvalidOperationException($"The {what} '{id}' is bound already: ask for its input or output once and keep it.");
    }

    /// <summary>Moves the driver's clock forward.</summary>
    public void AdvanceTime(TimeSpan by) => _clock.Advance(by);

    /// <summary>Runs one micro-batch over everything added since the last one (a batch runs even with nothing new) and returns its progress.</summary>
    public BatchProgress RunBatch() => RunBatchAsync().GetAwaiter().GetResult();

    /// <summary>Runs one micro-batch; see <see cref="RunBatch"/>.</summary>
    public async Task<BatchProgress> RunBatchAsync()
    {
        var run = _run ??= Start();
        var done = run.NextBatch();
        run.Stepper.Step();
        var finished = await Task.WhenAny(done, run.Task).ConfigureAwait(false);
        if (finished == run.Task)
        {
            _run = null;
            await run.Task.ConfigureAwait(false); // the batch failed: its error, as the runner reported it
            throw new InvalidOperationException("The run ended before its batch ran.");
        }

        return await done.ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="count"/> batches.</summary>
    public IReadOnlyList<BatchProgress> RunBatches(int count) => Enumerable.Range(0, count).Select(_ => RunBatch()).ToList();

    /// <summary>Stops the run as a clean stop does (its final snapshot written); the next batch restores from the checkpoint.</summary>
    public void Restart() => Stop(crash: false);

    /// <summary>
    /// Ends the run as a SIGKILL after its last commit would: no final snapshot, everything in memory gone. The next
    /// batch starts a new run that restores from the checkpoint (the newest snapshot, then the commits after it). The
    /// inputs keep their records and the outputs what they received, as Kafka and an exactly-once sink would.
    /// </summary>
    public void CrashAndRestore() => Stop(crash: true);

    /// <summary>
    /// The state of keyed operator <paramref name="operatorId"/> (an <c>[UpdateState]</c> operator) as the last batch left
    /// it, each key's value typed as the pipeline declares it: read it to assert what the pipeline remembers, also right
    /// after <see cref="CrashAndRestore"/> (the run restores first). The dictionary is a copy.
    /// </summary>
    public IReadOnlyDictionary<TKey, TState> StateOf<TKey, TState>(string operatorId) where TKey : notnull
    {
        var executor = StatefulExecutor(operatorId, out var stateful);
        if (executor is IKeyedStateView<TKey, TState> view)
            return view.Entries().ToDictionary(e => e.Key, e => e.State);
        var declared = executor.GetType().IsGenericType ? executor.GetType().GetGenericArguments() : Type.EmptyTypes;
        if (executor is IStatefulExecutor && executor.GetType().Name.StartsWith("UpdateStateExecutor", StringComparison.Ordinal) && declared.Length >= 3)
            throw new ArgumentException($"Operator '{operatorId}' keeps {declared[2].Name} per {declared[0].Name} key: ask StateOf<{declared[0].Name}, {declared[2].Name}>, not StateOf<{typeof(TKey).Name}, {typeof(TState).Name}>.", nameof(operatorId));
        if (IsStreamJoin(executor, out var join))
            throw new ArgumentException($"Operator '{operatorId}' is a stream join: read it with {join}.", nameof(operatorId));
        throw new ArgumentException($"Operator '{operatorId}' is not an [UpdateState] operator: only keyed state (StateOf) and stream joins (JoinStateOf) are readable by key here (windows are not yet; issue #23). Its stateful operators: {string.Join(", ", stateful)}.", nameof(operatorId));
    }

    /// <summary>
    /// The records stream join <paramref name="operatorId"/> (a <c>[StreamJoin]</c> operator) keeps as the last batch
    /// left it, per join key: the left and right records that later records of the other side can still match, each
    /// side in the order it arrived. A join with time bounds drops a record once the watermark passes the last time a
    /// match could arrive, so this shows what expiry kept. The dictionary is a copy.
    /// </summary>
    public IReadOnlyDictionary<TKey, JoinState<TLeft, TRight>> JoinStateOf<TKey, TLeft, TRight>(string operatorId) where TKey : notnull
    {
        var executor = StatefulExecutor(operatorId, out var stateful);
        if (executor is IJoinStateView<TKey, TLeft, TRight> view)
            return view.Entries().ToDictionary(e => e.Key, e => new JoinState<TLeft, TRight>(e.Left, e.Right));
        if (IsStreamJoin(executor, out var join))
            throw new ArgumentException($"Operator '{operatorId}' joins other types: ask {join}, not JoinStateOf<{typeof(TKey).Name}, {typeof(TLeft).Name}, {typeof(TRight).Name}>.", nameof(operatorId));
        throw new ArgumentException($"Operator '{operatorId}' is not a [StreamJoin] operator (read keyed state with StateOf). Its stateful operators: {string.Join(", ", stateful)}.", nameof(operatorId));
    }

    // The call a stream join's state is read with, its types spelled out.
    private static bool IsStreamJoin(object executor, out string call)
    {
        var type = executor.GetType();
        bool isJoin = type.IsGenericType && type.Name.StartsWith("StreamJoinExecutor", StringComparison.Ordinal);
        var declared = isJoin ? type.GetGenericArguments() : Type.EmptyTypes;
        call = isJoin ? $"JoinStateOf<{declared[0].Name}, {declared[1].Name}, {declared[2].Name}>" : "";
        return isJoin;
    }

    /// <summary>The executor of a stateful operator, once the run waits between batches (a new run restores first).</summary>
    private object StatefulExecutor(string operatorId, out List<string> stateful)
    {
        var run = _run ??= Start();
        // Between batches the run waits for its next step, so its operators are still; a new run restores first.
        while (_lastRunner!.Status.Phase != PipelineRunPhase.Running)
        {
            if (run.Task.IsCompleted)
            {
                _run = null;
                run.Task.GetAwaiter().GetResult();
                throw new InvalidOperationException("The run ended before its state could be read.");
            }

            Thread.Sleep(1);
        }

        var executor = _lastRunner.ActiveDriver?.Executor(operatorId);
        stateful = _definition.Operators.Where(o => _lastRunner.ActiveDriver?.Executor(o.Id) is IStatefulExecutor).Select(o => $"'{o.Id}'").ToList();
        if (executor is not IStatefulExecutor)
        {
            throw executor is null
                ? new ArgumentException($"Pipeline '{_definition.PipelineId}' has no operator '{operatorId}'. Its stateful operators: {string.Join(", ", stateful)}.", nameof(operatorId))
                : new ArgumentException($"Operator '{operatorId}' keeps no state. Its stateful operators: {string.Join(", ", stateful)}.", nameof(operatorId));
        }

        return executor;
    }

    /// <summary>The records set aside under <see cref="BadRecordPolicy.DeadLetter"/>, as the JSON lines the runtime wrote into the checkpoint.</summary>
    public IReadOnlyList<string> DeadLetters
    {
        get
        {
            var lines = new List<string>();
            foreach (string name in Checkpoint.ListAsync("dead-letter", CancellationToken.None).GetAwaiter().GetResult().OrderBy(n => n, StringComparer.Ordinal))
            {
                var bytes = Checkpoint.ReadAsync(name, CancellationToken.None).GetAwaiter().GetResult();
                if (bytes is null) continue;
                lines.AddRange(Encoding.UTF8.GetString(bytes).Split('\n', StringSplitOptions.RemoveEmptyEntries));
            }

            return lines;
        }
    }

    private void Stop(bool crash)
    {
        if (_run is not { } run) return;
        _run = null;
        if (crash) run.Stepper.Crash();
        run.Stopping.Cancel();
        run.Task.GetAwaiter().GetResult();
    }

    private Run Start()
    {
        var stepper = new BatchStepper();
        var options = new PipelineRunnerOptions
        {
            CheckpointStore = Checkpoint,
            Trigger = TriggerMode.Continuous,
            BatchInterval = TimeSpan.Zero,
            CheckpointInterval = _options.CheckpointInterval,
            Parallelism = 1, // the same bytes on any machine
            BadRecordPolicy = _options.BadRecordPolicy,
            Clock = _clock,
            NewCheckpointIdentity = () => $"test-checkpoint-{++_identities}",
            Stepper = stepper,
        };
        var runner = _lastRunner = new PipelineRunner(_definition, options);
        foreach (var bind in _bindings) bind(runner);
        var run = new Run(stepper);
        runner.BatchCompleted += progress =>
        {
            _batches.Add(progress);
            if (!progress.Replayed) run.Completed(progress);
        };
        run.Task = Task.Run(() => runner.RunAsync(run.Stopping.Token));
        return run;
    }

    /// <summary>Stops the run cleanly.</summary>
    public void Dispose() => Stop(crash: false);

    private sealed class Run(BatchStepper stepper)
    {
        private TaskCompletionSource<BatchProgress>? _next;

        public BatchStepper Stepper { get; } = stepper;

        public CancellationTokenSource Stopping { get; } = new();

        public Task<RunSummary> Task { get; set; } = null!;

        public Task<BatchProgress> NextBatch() => (_next = new TaskCompletionSource<BatchProgress>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        public void Completed(BatchProgress progress) => _next?.TrySetResult(progress);
    }
}
