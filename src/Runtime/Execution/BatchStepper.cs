using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Execution;

/// <summary>
/// Gates a run batch by batch for a test driver (PipelineDsl.Testing): the run waits for <see cref="Step"/> before each
/// batch, and a batch runs even without input, so that a test decides exactly how many batches run and what each reads.
/// <see cref="Crash"/> ends the run as a kill after its last commit would: without the clean stop's final snapshot.
/// </summary>
internal sealed class BatchStepper
{
    private readonly SemaphoreSlim _steps = new(0);

    /// <summary>True once the run is to end as if killed.</summary>
    public bool Crashed { get; private set; }

    /// <summary>Lets one batch run.</summary>
    public void Step() => _steps.Release();

    /// <summary>The run ends without its final snapshot; the caller then cancels it.</summary>
    public void Crash() => Crashed = true;

    /// <summary>Waits for the next step; false when the run is stopping instead.</summary>
    public async Task<bool> WaitAsync(CancellationToken stop)
    {
        try
        {
            await _steps.WaitAsync(stop).ConfigureAwait(false);
            return true;
        }
        catch (System.OperationCanceledException)
        {
            return false;
        }
    }
}
