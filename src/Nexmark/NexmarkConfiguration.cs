using System;

namespace PipelineDsl.Nexmark;

/// <summary>
/// Every parameter of the Nexmark generator (see <c>docs/nexmark/SPEC.md</c>). The defaults are the
/// canonical configuration: 10,000 events/s, one generator, proportions 1/3/46, base time
/// 2015-07-15T00:00:00Z, first event id and number 0.
/// </summary>
public sealed class NexmarkConfiguration
{
    /// <summary>Events per second of event time across all generators (default 10,000).</summary>
    public long FirstEventRate { get; set; } = 10_000;

    /// <summary>Parallel generators; each is one partition of the source and owns a disjoint range of event ids (default 1).</summary>
    public int NumEventGenerators { get; set; } = 1;

    /// <summary>Persons in every block of <c>T = Person + Auction + Bid</c> event ids (default 1).</summary>
    public int PersonProportion { get; set; } = 1;

    /// <summary>Auctions per block (default 3).</summary>
    public int AuctionProportion { get; set; } = 3;

    /// <summary>Bids per block (default 46).</summary>
    public int BidProportion { get; set; } = 46;

    /// <summary>Average size of a person event in bytes; sizes its padding (default 200).</summary>
    public int AvgPersonByteSize { get; set; } = 200;

    /// <summary>Average size of an auction event in bytes (default 500).</summary>
    public int AvgAuctionByteSize { get; set; } = 500;

    /// <summary>Average size of a bid event in bytes (default 100).</summary>
    public int AvgBidByteSize { get; set; } = 100;

    /// <summary>A bid goes to the hot auction with probability (r−1)/r (default 2).</summary>
    public int HotAuctionRatio { get; set; } = 2;

    /// <summary>An auction's seller is the hot seller with probability (r−1)/r (default 4).</summary>
    public int HotSellersRatio { get; set; } = 4;

    /// <summary>A bid's bidder is the hot bidder with probability (r−1)/r (default 4).</summary>
    public int HotBiddersRatio { get; set; } = 4;

    /// <summary>The window of recent people cold sellers and bidders are drawn from (default 1000).</summary>
    public int NumActivePeople { get; set; } = 1000;

    /// <summary>The window of recent auctions cold bids are drawn from; also sets auction length (default 100).</summary>
    public int NumInFlightAuctions { get; set; } = 100;

    /// <summary>Events are permuted within blocks of this size (1 = strictly in order; avoid multiples of 953).</summary>
    public int OutOfOrderGroupSize { get; set; } = 1;

    /// <summary>Total events across all generators; 0 = unbounded (the spec's maximum).</summary>
    public long NumEvents { get; set; }

    /// <summary>Event time of event number 0, Unix milliseconds (default 1436918400000, Beam's BASE_TIME).</summary>
    public long BaseTime { get; set; } = 1436918400000L;

    /// <summary>The event id of the first event (default 0).</summary>
    public long FirstEventId { get; set; }

    /// <summary>The event number of the first event; it drives time (default 0).</summary>
    public long FirstEventNumber { get; set; }

    /// <summary>
    /// True (default): every event is available at once. False: event n becomes available when
    /// <c>ts(n) − BaseTime</c> of wall time has passed since the source was created (real-time replay).
    /// </summary>
    public bool MaxEmitSpeed { get; set; } = true;

    /// <summary>Window size used by Beam's queries, in seconds (default 10; carried for completeness).</summary>
    public int WindowSizeSec { get; set; } = 10;

    /// <summary>Window period used by Beam's queries, in seconds (default 5; carried for completeness).</summary>
    public int WindowPeriodSec { get; set; } = 5;

    /// <summary>Beam's probability of a delayed event (default 0.1); the Flink generator ignores it, and so does this one.</summary>
    public double ProbDelayedEvent { get; set; } = 0.1;

    /// <summary>Beam's occasional delay in seconds (default 3); ignored like in the Flink generator.</summary>
    public int OccasionalDelaySec { get; set; } = 3;

    /// <summary>Adds 1000 to bidders a second time, as the current Flink generator does (default false).</summary>
    public bool FlinkDoubleBidderOffset { get; set; }

    /// <summary>The number of event ids in each block: person + auction + bid proportions.</summary>
    public int TotalProportion => PersonProportion + AuctionProportion + BidProportion;

    /// <summary>Microseconds of event time between consecutive event numbers of one generator.</summary>
    public double InterEventDelayUs => 1_000_000.0 / FirstEventRate * NumEventGenerators;

    /// <summary>The events this configuration produces in all: <see cref="NumEvents"/>, or the spec's maximum when 0.</summary>
    public long MaxEvents => NumEvents > 0
        ? NumEvents
        : long.MaxValue / ((long)TotalProportion * Math.Max(Math.Max(AvgPersonByteSize, AvgAuctionByteSize), AvgBidByteSize));

    /// <summary>A copy.</summary>
    public NexmarkConfiguration Clone() => (NexmarkConfiguration)MemberwiseClone();

    /// <summary>Checks every parameter; the message names the first bad one and the accepted range.</summary>
    /// <exception cref="ArgumentException">A parameter is out of range.</exception>
    public void Validate()
    {
        static void Check(bool ok, string name, object value, string rule)
        {
            if (!ok) throw new ArgumentException($"Nexmark option {name} = {value} is invalid: it must be {rule}.", name);
        }

        Check(FirstEventRate > 0, nameof(FirstEventRate), FirstEventRate, "1 or more events per second");
        Check(NumEventGenerators >= 1, nameof(NumEventGenerators), NumEventGenerators, "1 or more");
        Check(PersonProportion >= 1, nameof(PersonProportion), PersonProportion, "1 or more");
        Check(AuctionProportion >= 1, nameof(AuctionProportion), AuctionProportion, "1 or more");
        Check(BidProportion >= 0, nameof(BidProportion), BidProportion, "0 or more");
        Check(AvgPersonByteSize >= 1, nameof(AvgPersonByteSize), AvgPersonByteSize, "1 or more");
        Check(AvgAuctionByteSize >= 1, nameof(AvgAuctionByteSize), AvgAuctionByteSize, "1 or more");
        Check(AvgBidByteSize >= 1, nameof(AvgBidByteSize), AvgBidByteSize, "1 or more");
        Check(HotAuctionRatio >= 1, nameof(HotAuctionRatio), HotAuctionRatio, "1 or more");
        Check(HotSellersRatio >= 1, nameof(HotSellersRatio), HotSellersRatio, "1 or more");
        Check(HotBiddersRatio >= 1, nameof(HotBiddersRatio), HotBiddersRatio, "1 or more");
        Check(NumActivePeople >= 1, nameof(NumActivePeople), NumActivePeople, "1 or more");
        Check(NumInFlightAuctions >= 1, nameof(NumInFlightAuctions), NumInFlightAuctions, "1 or more");
        Check(OutOfOrderGroupSize >= 1, nameof(OutOfOrderGroupSize), OutOfOrderGroupSize, "1 or more");
        Check(OutOfOrderGroupSize == 1 || OutOfOrderGroupSize % 953 != 0, nameof(OutOfOrderGroupSize), OutOfOrderGroupSize,
            "not a multiple of 953 (every event of a block would collapse onto the block start)");
        Check(NumEvents >= 0, nameof(NumEvents), NumEvents, "0 (unbounded) or more");
        Check(NumEvents == 0 || NumEvents >= NumEventGenerators, nameof(NumEvents), NumEvents, $"at least {nameof(NumEventGenerators)} ({NumEventGenerators})");
        Check(BaseTime >= 0, nameof(BaseTime), BaseTime, "0 or more (Unix milliseconds)");
        Check(FirstEventId >= 0, nameof(FirstEventId), FirstEventId, "0 or more");
        Check(FirstEventNumber >= 0, nameof(FirstEventNumber), FirstEventNumber, "0 or more");
        Check(WindowSizeSec >= 1, nameof(WindowSizeSec), WindowSizeSec, "1 or more");
        Check(WindowPeriodSec >= 1, nameof(WindowPeriodSec), WindowPeriodSec, "1 or more");
        Check(ProbDelayedEvent is >= 0 and <= 1, nameof(ProbDelayedEvent), ProbDelayedEvent, "between 0 and 1");
        Check(OccasionalDelaySec >= 0, nameof(OccasionalDelaySec), OccasionalDelaySec, "0 or more");
    }
}
