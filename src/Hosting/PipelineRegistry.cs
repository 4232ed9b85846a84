using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using PipelineDsl.Checkpointing;

namespace PipelineDsl.Hosting;

/// <summary>The pipelines of this host and their status: what health checks and dashboards read.</summary>
public sealed class PipelineRegistry
{
    private readonly ConcurrentDictionary<string, (PipelineRunner Runner, PipelineServiceOptions Options, string Location, Lazy<ICheckpointStore> Store)> _running = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Queue<BatchProgress>> _recent = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PipelineRegistration> _registered;

    /// <summary>Created by the host.</summary>
    internal PipelineRegistry(IEnumerable<PipelineRegistration> registrations) =>
        _registered = registrations.ToDictionary(r => r.PipelineId, StringComparer.Ordinal);

    /// <summary>The definition of pipeline <paramref name="pipelineId"/>: its operators (ids, kinds, versions, inputs) and manifest.</summary>
    public Graph.PipelineDefinition DefinitionOf(string pipelineId)
    {
        StatusOf(pipelineId); // names an unknown id
        return _registered[pipelineId].Definition;
    }

    /// <summary>Where pipeline <paramref name="pipelineId"/> keeps its checkpoint (a directory or a store's location), once it has started.</summary>
    public string? CheckpointLocationOf(string pipelineId)
    {
        StatusOf(pipelineId);
        return _running.TryGetValue(pipelineId, out var r) ? r.Location : null;
    }

    /// <summary>
    /// The store that holds pipeline <paramref name="pipelineId"/>'s checkpoint, once it has started (null before): to
    /// look at it with <see cref="CheckpointReader.OpenAsync"/> and <see cref="ICheckpointStore.DescribeLockHolderAsync"/>.
    /// Never write to it: the running pipeline owns it.
    /// </summary>
    public ICheckpointStore? CheckpointStoreOf(string pipelineId)
    {
        StatusOf(pipelineId);
        return _running.TryGetValue(pipelineId, out var r) ? r.Store.Value : null;
    }

    /// <summary>The ids of the pipelines registered with <see cref="PipelineServiceCollectionExtensions.AddPipeline"/>, in order.</summary>
    public IReadOnlyList<string> PipelineIds => _registered.Keys.OrderBy(id => id, StringComparer.Ordinal).ToArray();

    /// <summary>The status of pipeline <paramref name="pipelineId"/>: not started until its hosted service has started it.</summary>
    public PipelineRunStatus StatusOf(string pipelineId)
    {
        if (!_registered.ContainsKey(pipelineId)) throw new ArgumentException($"No pipeline '{pipelineId}' is registered in this host; registered: {string.Join(", ", PipelineIds)}.", nameof(pipelineId));
        return _running.TryGetValue(pipelineId, out var r) ? r.Runner.Status : new PipelineRunStatus(PipelineRunPhase.NotStarted, null, null, null, null);
    }

    /// <summary>The progress records of pipeline <paramref name="pipelineId"/>'s latest batches (<see cref="PipelineServiceOptions.RecentBatches"/>), oldest first.</summary>
    public IReadOnlyList<BatchProgress> RecentBatches(string pipelineId)
    {
        StatusOf(pipelineId); // names an unknown id
        if (!_recent.TryGetValue(pipelineId, out var queue)) return Array.Empty<BatchProgress>();
        lock (queue) return queue.ToArray();
    }

    internal PipelineServiceOptions? OptionsOf(string pipelineId) => _running.TryGetValue(pipelineId, out var r) ? r.Options : null;

    internal void Attach(string pipelineId, PipelineRunner runner, PipelineServiceOptions options, PipelineRunnerOptions runnerOptions)
    {
        string location = runnerOptions.CheckpointStore?.Location ?? runnerOptions.CheckpointDirectory ?? "";
        // A directory's store is made when asked for (its constructor creates the directory, which the run does anyway).
        var store = new Lazy<ICheckpointStore>(() => runnerOptions.CheckpointStore ?? new LocalDirectoryCheckpointStore(location));
        _running[pipelineId] = (runner, options, location, store);
        var queue = _recent.GetOrAdd(pipelineId, _ => new Queue<BatchProgress>());
        runner.BatchCompleted += batch =>
        {
            lock (queue)
            {
                queue.Enqueue(batch);
                while (queue.Count > options.RecentBatches) queue.Dequeue();
            }
        };
    }
}
