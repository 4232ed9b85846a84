using System.Diagnostics;
using PipelineDsl;

namespace ClicksPerUser;

/// <summary>
/// Keeps an idle continuous run quiet: instead of one "0 records" line per batch interval, one line when the
/// input runs dry and one when records arrive again, saying for how long it waited.
/// </summary>
internal sealed class IdleReporter
{
    private readonly Stopwatch _idle = new();
    private long _emptyBatches;

    /// <summary>True when <paramref name="batch"/> did nothing worth a line of its own.</summary>
    public bool Skip(BatchProgress batch)
    {
        if (batch.InputRecords == 0 && batch.OutputRecords == 0 && batch.DeadLetters == 0)
        {
            if (_emptyBatches++ == 0)
            {
                _idle.Restart();
                Console.WriteLine($"batch {batch.BatchId,5}: no new input; waiting for more (quiet until records arrive)");
            }

            return true;
        }

        if (_emptyBatches > 0)
        {
            Console.WriteLine($"             idle for {_idle.Elapsed.TotalSeconds:F0} s ({_emptyBatches:N0} empty batches)");
            _emptyBatches = 0;
        }

        return false;
    }
}
