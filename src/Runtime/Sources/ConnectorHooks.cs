using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl;

/// <summary>Which pipeline and operator a connector serves; handed to connectors that implement <see cref="IConnectorContextAware"/>.</summary>
/// <param name="PipelineId">The pipeline's id (stable across builds).</param>
/// <param name="OperatorId">The id of the source or sink the connector is bound to.</param>
public sealed record ConnectorContext(string PipelineId, string OperatorId);

/// <summary>
/// Implemented by connectors that derive names from the pipeline they serve (for example a Kafka sink's
/// transactional id). The runner calls <see cref="Attach"/> once, when a run starts, before any other call.
/// </summary>
public interface IConnectorContextAware
{
    /// <summary>Tells the connector which pipeline and operator it is bound to.</summary>
    void Attach(ConnectorContext context);
}

/// <summary>
/// Implemented by sources that publish progress somewhere else (for example a Kafka consumer group, so that
/// lag tools see it). Called after each batch is committed, with the positions the checkpoint now holds for
/// this source. Informational only: the checkpoint stays the truth, and a failure here never fails the batch.
/// </summary>
public interface ISourceCommitListener
{
    /// <summary>Batch <paramref name="batchId"/> is committed; <paramref name="positions"/> maps each partition to its next position.</summary>
    Task OnBatchCommittedAsync(long batchId, IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken);

    /// <summary>
    /// No recovery will read this source below <paramref name="positions"/> (partition to position) again: every snapshot
    /// the checkpoint keeps, and the batches after them that a restart could re-run, start at or above them. A source that
    /// keeps its own data for replay (a write-ahead log) may delete what lies below. Called after a commit (a pipeline
    /// without state) or after a snapshot's retention (a pipeline with state). The default does nothing.
    /// </summary>
    Task OnNoLongerNeededBelowAsync(IReadOnlyDictionary<string, long> positions, CancellationToken cancellationToken) => Task.CompletedTask;
}
