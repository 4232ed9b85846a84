using System;

namespace PipelineDsl.Execution;

/// <summary>
/// Sizes batches from the measured processing rate so that each takes about one batch interval (Spark Streaming's
/// backpressure, <c>PIDRateEstimator</c>). After every batch that read records it measures the rate the pipeline
/// processed them at, and sets the rate limit for the next plans to
/// <c>limit − P·(limit − measured) − I·(schedulingDelay · measured / interval) − D·d(error)/dt</c>, never below the
/// minimum. With the defaults (P = 1, I = 0.2, D = 0) this is the measured rate, less a fifth of the backlog that made
/// batches start late: batches shrink until they keep up, and grow again as soon as the pipeline is faster than the
/// limit. Unlike Spark's estimator the first measurement is used at once, so only one batch runs at the initial rate.
/// </summary>
internal sealed class RateController
{
    private readonly BackpressureOptions _options;
    private readonly double _intervalSeconds;
    private TimeSpan? _latestTime;
    private double _latestError;

    public RateController(BackpressureOptions options, TimeSpan batchInterval)
    {
        _options = options;
        _intervalSeconds = batchInterval.TotalSeconds;
        Limit = options.InitialRecordsPerSecond;
    }

    /// <summary>The rate limit for the next plan, in records per second (of all sources together).</summary>
    public double Limit { get; private set; }

    /// <summary>The most records the next batch may read: the limit times the batch interval, at least one.</summary>
    public long BatchBudget => (long)Math.Max(1, Math.Min(long.MaxValue / 2, Math.Ceiling(Limit * _intervalSeconds)));

    /// <summary>
    /// A batch finished at <paramref name="now"/> (a monotonic clock): it read <paramref name="records"/> in
    /// <paramref name="processing"/> and started <paramref name="schedulingDelay"/> after it was due. A batch without
    /// records or without measurable time says nothing about the rate and changes nothing.
    /// </summary>
    public void BatchCompleted(TimeSpan now, long records, TimeSpan processing, TimeSpan schedulingDelay)
    {
        if (records <= 0 || processing <= TimeSpan.Zero || (_latestTime is { } latest && now <= latest)) return;
        double processingRate = records / processing.TotalSeconds;
        if (_latestTime is not { } previous)
        {
            _latestTime = now;
            _latestError = 0;
            Limit = Math.Max(_options.MinRecordsPerSecond, processingRate);
            return;
        }

        double sinceUpdate = (now - previous).TotalSeconds;
        double error = Limit - processingRate;
        double historicalError = schedulingDelay.TotalSeconds * processingRate / _intervalSeconds;
        double errorChange = (error - _latestError) / sinceUpdate;
        double next = Limit - _options.Proportional * error - _options.Integral * historicalError - _options.Derivative * errorChange;
        _latestTime = now;
        _latestError = error;
        Limit = Math.Max(_options.MinRecordsPerSecond, next);
    }
}
