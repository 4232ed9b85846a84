using System.Text.RegularExpressions;
using PipelineDsl;
using PipelineDsl.Nexmark;
using PipelineDsl.Sinks;

namespace PipelineDsl.Samples.Nexmark;

// The Nexmark queries (docs/nexmark/SPEC.md section 3) as PipelineDsl pipelines. Each reads the source
// "events" and writes the sink "out". Event time is the events' DateTime with a 4 s watermark delay, as in
// the Flink SQL of nexmark/nexmark; windows are aligned to the Unix epoch.

/// <summary>q0: pass-through of every bid.</summary>
[Pipeline("nexmark-q0")]
public static partial class Q0
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("project", From = "bids")]
    public static Q0Row Project(Event e) => new(e.Bid!.Auction, e.Bid.Bidder, e.Bid.Price, e.Bid.DateTime, e.Bid.Extra);

    [Sink("out", From = "project")] public static partial Sink<Q0Row> Out();
}

/// <summary>q1: bid prices converted to euros (0.908 per dollar), as DECIMAL(23,3).</summary>
[Pipeline("nexmark-q1")]
public static partial class Q1
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("convert", From = "bids")]
    public static Q1Row Convert(Event e)
    {
        var b = e.Bid!;
        return new Q1Row(b.Auction, b.Bidder, 0.908m * b.Price, b.DateTime, b.Extra);
    }

    [Sink("out", From = "convert")] public static partial Sink<Q1Row> Out();
}

/// <summary>q2: bids on auctions whose id is a multiple of 123.</summary>
[Pipeline("nexmark-q2")]
public static partial class Q2
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("selected", From = "events")] public static bool Selected(Event e) => e.Bid is { } b && b.Auction % 123 == 0;

    [Map("project", From = "selected")] public static Q2Row Project(Event e) => new(e.Bid!.Auction, e.Bid.Price);

    [Sink("out", From = "project")] public static partial Sink<Q2Row> Out();
}

/// <summary>q3: local item suggestion, an unbounded join of category-10 auctions with sellers in OR, ID or CA.</summary>
[Pipeline("nexmark-q3")]
public static partial class Q3
{
    [Source("events")] public static partial Source<Event> Events();

    [FlatMap("auctions", From = "events")]
    public static IEnumerable<SellerAuction> Auctions(Event e) =>
        e.Auction is { Category: 10 } a ? new[] { new SellerAuction(a.Id, a.Seller) } : Array.Empty<SellerAuction>();

    [FlatMap("persons", From = "events")]
    public static IEnumerable<SellerInfo> Persons(Event e) =>
        e.Person is { State: "OR" or "ID" or "CA" } p ? new[] { new SellerInfo(p.Id, p.Name, p.City, p.State) } : Array.Empty<SellerInfo>();

    [StreamJoin("join", Left = "auctions", Right = "persons", LeftKey = nameof(SellerAuction.Seller), RightKey = nameof(SellerInfo.Id))]
    public static Q3Row Join(SellerAuction a, SellerInfo p) => new(p.Name, p.City, p.State, a.Id);

    [Sink("out", From = "join")] public static partial Sink<Q3Row> Out();
}

/// <summary>
/// q4: average closing price per category. Bids join their auction while it is open (an interval join that
/// drops an auction once the watermark passes its expiry); the highest bid per auction and the average of
/// those per category are keyed state, emitted as updates (the last row per category is the result).
/// </summary>
[Pipeline("nexmark-q4")]
public static partial class Q4
{
    [Source("events")] public static partial Source<Event> Events();

    [Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    public static partial Stream<Event> Timed();

    [Filter("auctions-events", From = "timed")] public static bool IsAuctions(Event e) => e.Type == EventType.Auction;

    [Map("auctions", From = "auctions-events")]
    public static OpenAuction Auctions(Event e) => OpenAuction.Of(e.Auction!);

    [Filter("bids-events", From = "timed")] public static bool IsBids(Event e) => e.Type == EventType.Bid;

    [Map("bids", From = "bids-events")]
    public static BidPrice Bids(Event e) => BidPrice.Of(e.Bid!);

    [StreamJoin("open-auction-bids", Left = "auctions", Right = "bids", LeftKey = nameof(OpenAuction.Id), RightKey = nameof(BidPrice.Auction),
        LeftTime = nameof(OpenAuction.DateTime), LeftEndTime = nameof(OpenAuction.Expires), RightTime = nameof(BidPrice.DateTime))]
    public static AuctionBid Match(OpenAuction a, BidPrice b) => AuctionBid.Of(a, b);

    [UpdateState("max-per-auction", From = "open-auction-bids", Key = nameof(AuctionBid.AuctionId))]
    public static MaxChange? MaxPerAuction(long auction, AuctionBid bid, KeyedState<AuctionMax> state)
    {
        if (state.Exists && state.Value.Max >= bid.Price) return null;
        bool first = !state.Exists;
        long previous = state.Value.Max;
        state.Update(new AuctionMax(bid.Category, bid.Price));
        return new MaxChange(bid.Category, previous, bid.Price, first);
    }

    [UpdateState("average-per-category", From = "max-per-auction", Key = nameof(MaxChange.Category))]
    public static Q4Row AveragePerCategory(long category, MaxChange change, KeyedState<CategoryTotals> state)
    {
        var totals = state.Value;
        totals = change.First ? new CategoryTotals(totals.Sum + change.Current, totals.Count + 1) : new CategoryTotals(totals.Sum + change.Current - change.Previous, totals.Count);
        state.Update(totals);
        return new Q4Row(category, totals.Sum / totals.Count);
    }

    [Sink("out", From = "average-per-category")] public static partial Sink<Q4Row> Out();
}

/// <summary>q5: hot items, the auctions with the most bids in each 10 s window sliding by 2 s (all ties).</summary>
[Pipeline("nexmark-q5")]
public static partial class Q5
{
    [Source("events")] public static partial Source<Event> Events();

    [Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    public static partial Stream<Event> Timed();

    [Filter("bids-events", From = "timed")] public static bool IsBids(Event e) => e.Type == EventType.Bid;

    [Map("bids", From = "bids-events")]
    public static AuctionCount Bids(Event e) => new(e.Bid!.Auction, 1, e.Bid.DateTime);

    [EventTimeWindow("count-per-window", From = "bids", Key = nameof(AuctionCount.Auction), Time = nameof(AuctionCount.DateTime), SizeMs = 10_000, SlideMs = 2_000)]
    public static AuctionCount Count(AuctionCount a, AuctionCount b) => a with { Count = a.Count + b.Count };

    [Map("as-candidates", From = "count-per-window")]
    public static HotItems Candidates(EventWindow<long, AuctionCount> w) => new(w.Start, w.End, w.Value.Count, new[] { w.Key });

    // A window's results all arrive in one batch, so a per-batch reduce by window sees all of them.
    [Reduce("max-per-window", From = "as-candidates", Key = nameof(HotItems.WindowStart))]
    public static HotItems Max(HotItems a, HotItems b) =>
        a.Count > b.Count ? a : b.Count > a.Count ? b : a with { Auctions = a.Auctions.Concat(b.Auctions).ToArray() };

    [FlatMap("rows", From = "max-per-window")]
    public static IEnumerable<Q5Row> Rows(HotItems h) => h.Auctions.Select(a => new Q5Row(a, h.Count, h.WindowStart, h.WindowEnd));

    [Sink("out", From = "rows")] public static partial Sink<Q5Row> Out();
}

/// <summary>
/// q6: average selling price by seller over its last closed auctions (up to 11: ROWS 10 PRECEDING AND CURRENT
/// ROW). An auction closes when the watermark passes its expiry: its matched bids all carry the expiry as
/// their time, so a session window keyed by auction holds exactly one session per auction, which fires then.
/// </summary>
[Pipeline("nexmark-q6")]
public static partial class Q6
{
    [Source("events")] public static partial Source<Event> Events();

    [Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    public static partial Stream<Event> Timed();

    [Filter("auctions-events", From = "timed")] public static bool IsAuctions(Event e) => e.Type == EventType.Auction;

    [Map("auctions", From = "auctions-events")]
    public static OpenAuction Auctions(Event e) => OpenAuction.Of(e.Auction!);

    [Filter("bids-events", From = "timed")] public static bool IsBids(Event e) => e.Type == EventType.Bid;

    [Map("bids", From = "bids-events")]
    public static BidPrice Bids(Event e) => BidPrice.Of(e.Bid!);

    [StreamJoin("open-auction-bids", Left = "auctions", Right = "bids", LeftKey = nameof(OpenAuction.Id), RightKey = nameof(BidPrice.Auction),
        LeftTime = nameof(OpenAuction.DateTime), LeftEndTime = nameof(OpenAuction.Expires), RightTime = nameof(BidPrice.DateTime))]
    public static AuctionBid Match(OpenAuction a, BidPrice b) => AuctionBid.Of(a, b);

    [SessionWindow("winning-bid", From = "open-auction-bids", Key = nameof(AuctionBid.AuctionId), Time = nameof(AuctionBid.Expires), GapMs = 1)]
    public static AuctionBid Winner(AuctionBid a, AuctionBid b) => b.Price > a.Price ? b : a;

    [Map("winners", From = "winning-bid")]
    public static AuctionBid Winners(EventWindow<long, AuctionBid> w) => w.Value;

    [UpdateState("average-per-seller", From = "winners", Key = nameof(AuctionBid.Seller))]
    public static Q6Row AveragePerSeller(long seller, AuctionBid winner, KeyedState<SellerPrices> state)
    {
        var prices = state.Exists ? state.Value : new SellerPrices();
        prices.Prices.Add(winner.Price);
        if (prices.Prices.Count > 11) prices.Prices.RemoveAt(0);
        state.Update(prices);
        return new Q6Row(seller, winner.AuctionId, prices.Prices.Sum() / prices.Prices.Count);
    }

    [Sink("out", From = "average-per-seller")] public static partial Sink<Q6Row> Out();
}

/// <summary>
/// q7: highest bid, the bids whose price is the maximum of a 10 s window, within that window with both ends
/// included (the SQL's <c>BETWEEN end - 10 s AND end</c>). A bid below the running maximum of its window can
/// never be a result, so the window keeps only the bids at its maximum instead of joining every bid. Bids at
/// exactly a window's end belong to the next window but also match this one's maximum: only those few are
/// joined, each with the maximum of the window that ends at its time.
/// </summary>
[Pipeline("nexmark-q7")]
public static partial class Q7
{
    [Source("events")] public static partial Source<Event> Events();

    [Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    public static partial Stream<Event> Timed();

    [Filter("bids-events", From = "timed")] public static bool IsBids(Event e) => e.Type == EventType.Bid;

    [Map("bids", From = "bids-events")]
    public static Bid Bids(Event e) => e.Bid!;

    [Map("candidates", From = "bids")] public static MaxBids Candidates(Bid b) => new(b.Price, b.DateTime, 0, new[] { b });

    [EventTimeWindow("max-per-window", From = "candidates", Key = nameof(MaxBids.Group), Time = nameof(MaxBids.DateTime), SizeMs = 10_000)]
    public static MaxBids Max(MaxBids a, MaxBids b) =>
        a.Price > b.Price ? a : b.Price > a.Price ? b : a with { Bids = a.Bids.Concat(b.Bids).ToArray() };

    [FlatMap("inside", From = "max-per-window")]
    public static IEnumerable<Q7Row> Inside(EventWindow<int, MaxBids> w) => w.Value.Bids.Select(Row);

    [Map("window-max", From = "max-per-window")]
    public static WindowMax WindowMaxOf(EventWindow<int, MaxBids> w) => new(w.Value.Price, w.End);

    [Filter("at-window-ends", From = "bids")] public static bool AtWindowEnd(Bid b) => b.DateTime % 10_000 == 0;

    [StreamJoin("at-end", Left = "window-max", Right = "at-window-ends", LeftKey = nameof(WindowMax.MaxPrice), RightKey = nameof(Bid.Price),
        LeftTime = nameof(WindowMax.WindowEnd), RightTime = nameof(Bid.DateTime), LowerBoundMs = 0, UpperBoundMs = 0)]
    public static Q7Row AtEnd(WindowMax m, Bid b) => Row(b);

    [Union("bids-at-max", "inside", "at-end")] public static partial Stream<Q7Row> BidsAtMax();

    [Sink("out", From = "bids-at-max")] public static partial Sink<Q7Row> Out();

    private static Q7Row Row(Bid b) => new(b.Auction, b.Price, b.Bidder, b.DateTime, b.Extra);
}

/// <summary>q8: monitor new users, persons who registered and opened an auction in the same 10 s window.</summary>
[Pipeline("nexmark-q8")]
public static partial class Q8
{
    [Source("events")] public static partial Source<Event> Events();

    [Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    public static partial Stream<Event> Timed();

    [Filter("persons-events", From = "timed")] public static bool IsPersons(Event e) => e.Type == EventType.Person;

    [Map("persons", From = "persons-events")]
    public static NewPerson Persons(Event e) => new(e.Person!.Id, e.Person.Name, e.Person.DateTime);

    [Filter("sellers-events", From = "timed")] public static bool IsSellers(Event e) => e.Type == EventType.Auction;

    [Map("sellers", From = "sellers-events")]
    public static NewSeller Sellers(Event e) => new(e.Auction!.Seller, e.Auction.DateTime);

    [EventTimeWindow("persons-per-window", From = "persons", Key = nameof(NewPerson.Id), Time = nameof(NewPerson.DateTime), SizeMs = 10_000)]
    public static NewPerson FirstPerson(NewPerson a, NewPerson b) => a;

    [EventTimeWindow("sellers-per-window", From = "sellers", Key = nameof(NewSeller.Seller), Time = nameof(NewSeller.DateTime), SizeMs = 10_000)]
    public static NewSeller FirstSeller(NewSeller a, NewSeller b) => a;

    [Map("person-windows", From = "persons-per-window")]
    public static PersonInWindow PersonWindows(EventWindow<long, NewPerson> w) => new(w.Key, w.Value.Name, w.Start, w.End);

    [Map("seller-windows", From = "sellers-per-window")]
    public static SellerInWindow SellerWindows(EventWindow<long, NewSeller> w) => new(w.Key, w.Start, w.End);

    // Same key and the same window end: the same window.
    [StreamJoin("same-window", Left = "person-windows", Right = "seller-windows", LeftKey = nameof(PersonInWindow.Id), RightKey = nameof(SellerInWindow.Seller),
        LeftTime = nameof(PersonInWindow.End), RightTime = nameof(SellerInWindow.End))]
    public static Q8Row Join(PersonInWindow p, SellerInWindow s) => new(p.Id, p.Name, p.Start);

    [Sink("out", From = "same-window")] public static partial Sink<Q8Row> Out();
}

/// <summary>q9: winning bids, each auction with its highest bid (earliest on ties) once it closed.</summary>
[Pipeline("nexmark-q9")]
public static partial class Q9
{
    [Source("events")] public static partial Source<Event> Events();

    [Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    public static partial Stream<Event> Timed();

    [Filter("auctions-events", From = "timed")] public static bool IsAuctions(Event e) => e.Type == EventType.Auction;

    [Map("auctions", From = "auctions-events")]
    public static Auction Auctions(Event e) => e.Auction!;

    [Filter("bids-events", From = "timed")] public static bool IsBids(Event e) => e.Type == EventType.Bid;

    [Map("bids", From = "bids-events")]
    public static Bid Bids(Event e) => e.Bid!;

    [StreamJoin("open-auction-bids", Left = "auctions", Right = "bids", LeftKey = nameof(Auction.Id), RightKey = nameof(Bid.Auction),
        LeftTime = nameof(Auction.DateTime), LeftEndTime = nameof(Auction.Expires), RightTime = nameof(Bid.DateTime))]
    public static AuctionWithBid Match(Auction a, Bid b) => new(a, b);

    [Map("at-close", From = "open-auction-bids")]
    public static ClosingBid AtClose(AuctionWithBid x) => new(x.Auction.Id, x.Auction.Expires, x);

    [SessionWindow("winning-bid", From = "at-close", Key = nameof(ClosingBid.AuctionId), Time = nameof(ClosingBid.Expires), GapMs = 1)]
    public static ClosingBid Winner(ClosingBid a, ClosingBid b) =>
        b.Pair.Bid.Price > a.Pair.Bid.Price || (b.Pair.Bid.Price == a.Pair.Bid.Price && b.Pair.Bid.DateTime < a.Pair.Bid.DateTime) ? b : a;

    [Map("rows", From = "winning-bid")]
    public static Q9Row Rows(EventWindow<long, ClosingBid> w) => new(w.Value.Pair.Auction, w.Value.Pair.Bid);

    [Sink("out", From = "rows")] public static partial Sink<Q9Row> Out();
}

/// <summary>q9/q6 helper: a matched pair keyed by its auction, timed at the auction's close.</summary>
[StateContract]
public sealed partial record ClosingBid([property: Field(0)] long AuctionId, [property: Field(1)] long Expires, [property: Field(2)] AuctionWithBid Pair);

/// <summary>q11: user sessions, bids per bidder in event-time sessions with a 10 s gap.</summary>
[Pipeline("nexmark-q11")]
public static partial class Q11
{
    [Source("events")] public static partial Source<Event> Events();

    [Watermark("timed", From = "events", Time = nameof(Event.DateTime), MaxOutOfOrdernessMs = 4000)]
    public static partial Stream<Event> Timed();

    [Filter("bids-events", From = "timed")] public static bool IsBids(Event e) => e.Type == EventType.Bid;

    [Map("bids", From = "bids-events")]
    public static BidderCount Bids(Event e) => new(e.Bid!.Bidder, 1, e.Bid.DateTime);

    [SessionWindow("sessions", From = "bids", Key = nameof(BidderCount.Bidder), Time = nameof(BidderCount.DateTime), GapMs = 10_000)]
    public static BidderCount Count(BidderCount a, BidderCount b) => a with { Count = a.Count + b.Count };

    [Map("rows", From = "sessions")]
    public static Q11Row Rows(EventWindow<long, BidderCount> w) => new(w.Key, w.Value.Count, w.Start, w.End);

    [Sink("out", From = "rows")] public static partial Sink<Q11Row> Out();
}

/// <summary>q13: bounded side-input join with a static table of 10,000 rows (key i, value "i").</summary>
[Pipeline("nexmark-q13")]
public static partial class Q13
{
    /// <summary>The side input: F's SideInputGenerator writes key i with value "i".</summary>
    private static readonly string[] SideInput = Enumerable.Range(0, 10_000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    [Source("events")] public static partial Source<Event> Events();

    [FlatMap("lookup", From = "events")]
    public static IEnumerable<Q13Row> Lookup(Event e) =>
        e.Bid is { } b ? new[] { new Q13Row(b.Auction, b.Bidder, b.Price, b.DateTime, SideInput[b.Auction % 10_000]) } : Array.Empty<Q13Row>();

    [Sink("out", From = "lookup")] public static partial Sink<Q13Row> Out();
}

/// <summary>q14: calculation, converted prices in a range with the time of day and a count of 'c'.</summary>
[Pipeline("nexmark-q14")]
public static partial class Q14
{
    [Source("events")] public static partial Source<Event> Events();

    // 0.908 × price is in (1,000,000, 50,000,000) exactly when 908 × price is in (10^9, 5 × 10^10): the
    // filter tests it in integers, and only the bids kept pay for the decimal.
    [Filter("in-range", From = "events")]
    public static bool InRange(Event e) => e.Bid is { } b && b.Price * 908 > 1_000_000_000L && b.Price * 908 < 50_000_000_000L;

    [Map("calculate", From = "in-range")]
    public static Q14Row Calculate(Event e)
    {
        var b = e.Bid!;
        int hour = (int)(b.DateTime / 3_600_000 % 24); // Nexmark times are after 1970, so this is the UTC hour
        string type = hour is >= 8 and <= 18 ? "dayTime" : hour <= 6 || hour >= 20 ? "nightTime" : "otherTime";
        return new Q14Row(b.Auction, b.Bidder, 0.908m * b.Price, type, b.DateTime, b.Extra, b.Extra.AsSpan().Count('c'));
    }

    [Sink("out", From = "calculate")] public static partial Sink<Q14Row> Out();
}

/// <summary>
/// q15: bidding statistics per day: bids, distinct bidders and distinct auctions, each in total and per price
/// rank. Distinct counts are split as in Flink's split-distinct aggregation: a stage keyed by (day, bidder)
/// and one keyed by (day, auction) remember which ranks each has been seen in, and pass on what is new; the
/// stage keyed by day only adds. An updating aggregate: each bid emits its day's new row.
/// </summary>
[Pipeline("nexmark-q15")]
public static partial class Q15
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("ranked", From = "bids")] public static RankedBid Ranked(Event e) => RankedBid.Of(e.Bid!);

    [UpdateState("new-bidders", From = "ranked", Key = nameof(RankedBid.DayBidder))]
    public static RankedBid NewBidders(DayId key, RankedBid bid, KeyedState<byte> ranksSeen) => bid with { NewBidder = RankedBid.MarkSeen(ranksSeen, bid.Rank) };

    [UpdateState("new-auctions", From = "new-bidders", Key = nameof(RankedBid.DayAuction))]
    public static RankedBid NewAuctions(DayId key, RankedBid bid, KeyedState<byte> ranksSeen) => bid with { NewAuction = RankedBid.MarkSeen(ranksSeen, bid.Rank) };

    [UpdateState("per-day", From = "new-auctions", Key = nameof(RankedBid.Day))]
    public static Q15Row PerDay(long day, RankedBid bid, KeyedState<BidStatistics> statistics)
    {
        var s = statistics.Value.Add(bid);
        statistics.Update(s);
        return new Q15Row(day * RankedBid.MsPerDay, s);
    }

    [Sink("out", From = "per-day")] public static partial Sink<Q15Row> Out();
}

/// <summary>
/// q16: channel statistics per (channel, day): q15's counts and distinct counts, and the latest minute of the day
/// (<c>max(HH:mm)</c>). The same split-distinct stages as q15, keyed by channel too: their state holds about one
/// entry per (channel, day, bidder) and (channel, day, auction), which is why q16 belongs on a state backend that is
/// not bounded by memory. An updating aggregate: each bid emits its key's new row.
/// </summary>
[Pipeline("nexmark-q16")]
public static partial class Q16
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("ranked", From = "bids")] public static ChannelRankedBid Ranked(Event e) => ChannelRankedBid.Of(e.Bid!);

    [UpdateState("new-bidders", From = "ranked", Key = nameof(ChannelRankedBid.ChannelDayBidder))]
    public static ChannelRankedBid NewBidders(ChannelDayId key, ChannelRankedBid bid, KeyedState<byte> ranksSeen) => bid with { NewBidder = RankedBid.MarkSeen(ranksSeen, bid.Rank) };

    [UpdateState("new-auctions", From = "new-bidders", Key = nameof(ChannelRankedBid.ChannelDayAuction))]
    public static ChannelRankedBid NewAuctions(ChannelDayId key, ChannelRankedBid bid, KeyedState<byte> ranksSeen) => bid with { NewAuction = RankedBid.MarkSeen(ranksSeen, bid.Rank) };

    [UpdateState("per-channel-day", From = "new-auctions", Key = nameof(ChannelRankedBid.Key))]
    public static Q16Row PerChannelDay(ChannelDay key, ChannelRankedBid bid, KeyedState<ChannelStatistics> statistics)
    {
        var s = new ChannelStatistics(statistics.Value.S.Add(bid.AsRanked()), Math.Max(statistics.Value.MaxMinute, bid.Minute));
        statistics.Update(s);
        return new Q16Row(key.Channel, key.Day * RankedBid.MsPerDay, s.MaxMinute, s.S);
    }

    [Sink("out", From = "per-channel-day")] public static partial Sink<Q16Row> Out();
}

/// <summary>
/// q19: the top 10 bids of each auction by price (SQL's ROW_NUMBER over price DESC, rank &lt;= 10), the earlier bid
/// first among equal prices. Updating: a bid that enters its auction's top 10 emits the rows of every rank it moved,
/// its own included, so the last row per (auction, rank) is the result. State: up to 10 bids per auction.
/// </summary>
[Pipeline("nexmark-q19")]
public static partial class Q19
{
    private const int Top = 10;

    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("bid", From = "bids")] public static Bid TheBid(Event e) => e.Bid!;

    [UpdateState("top-10", From = "bid", Key = nameof(Bid.Auction))]
    public static Q19Row[] TopTen(long auction, Bid bid, KeyedState<TopBids> top)
    {
        var bids = top.Exists ? top.Value.Bids : new List<Bid>();
        int rank = 0;
        while (rank < bids.Count && bids[rank].Price >= bid.Price) rank++;
        if (rank >= Top) return Array.Empty<Q19Row>();
        var next = new List<Bid>(bids);
        next.Insert(rank, bid);
        if (next.Count > Top) next.RemoveAt(Top);
        top.Update(new TopBids { Bids = next });
        var rows = new Q19Row[next.Count - rank];
        for (int r = rank; r < next.Count; r++) rows[r - rank] = new Q19Row(next[r], r + 1);
        return rows;
    }

    [FlatMap("rows", From = "top-10")] public static IEnumerable<Q19Row> Rows(Q19Row[] rows) => rows;

    [Sink("out", From = "rows")] public static partial Sink<Q19Row> Out();
}

/// <summary>
/// q10: every bid with its UTC date (<c>dt</c>, yyyy-MM-dd) and minute (<c>hm</c>, HH:mm), logged to CSV files
/// partitioned by (dt, hm): a new directory, so a new file, every minute of event time. The sink
/// (<see cref="PartitionedFileSink{T}"/>) is exactly-once: each batch's files have names fixed by the batch and are
/// listed in the sink's batch log once durable.
/// </summary>
[Pipeline("nexmark-q10")]
public static partial class Q10
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("with-partition", From = "bids")] public static Q10Row WithPartition(Event e) => Q10Row.Of(e.Bid!);

    [Sink("out", From = "with-partition")] public static partial Sink<Q10Row> Out();

    /// <summary>The file system sink of q10, into <paramref name="directory"/>: <c>dt=…/hm=…/part-….csv</c> (':' escaped as %3A, as Hive does).</summary>
    public static ISinkConnector<Q10Row> Files(string directory) =>
        new PartitionedFileSink<Q10Row>(directory, r => PartitionedFileSink.PartitionPath(("dt", r.Dt), ("hm", r.Hm)), r => r.ToCsv());
}

/// <summary>
/// q12: bids counted per bidder in tumbling 10 s windows of processing time. A micro-batch's processing time is its
/// batch time (<see cref="BatchTime"/>: when the batch was planned, logged with its input ranges), so every bid is
/// stamped with it, and a watermark on that stamp fires each window with the first batch planned at or after its end
/// that has bids (or at the end of input). A replayed batch reads its logged time back, so the output survives a crash unchanged;
/// with a clock of its own (<see cref="PipelineRunnerOptions.Clock"/>) a test gets the same output every run.
/// </summary>
[Pipeline("nexmark-q12")]
public static partial class Q12
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("stamped", From = "bids")] public static BidderAt Stamp(Event e, BatchTime time) => new(e.Bid!.Bidder, 1, time.UnixMilliseconds);

    [Watermark("processing-time", From = "stamped", Time = nameof(BidderAt.ProcessingTime), MaxOutOfOrdernessMs = 0)]
    public static partial Stream<BidderAt> ProcessingTime();

    [EventTimeWindow("per-window", From = "processing-time", Key = nameof(BidderAt.Bidder), Time = nameof(BidderAt.ProcessingTime), SizeMs = 10_000)]
    public static BidderAt Count(BidderAt a, BidderAt b) => a with { Count = a.Count + b.Count };

    [Map("rows", From = "per-window")] public static Q12Row Row(EventWindow<long, BidderAt> w) => new(w.Key, w.Value.Count, w.Start, w.End);

    [Sink("out", From = "rows")] public static partial Sink<Q12Row> Out();
}

/// <summary>
/// q20: every bid expanded with its auction's columns, for auctions in category 10 (a regular, unbounded join on
/// <c>bid.auction = auction.id</c>). An auction's id is its primary key, so the join is keyed state per auction: the
/// auction once it is seen (or, outside category 10, only the fact that it was seen) and the bids that came before it
/// (a bid may name an auction up to 10 ids past the newest). A bid joins at once when its auction is known, so state
/// holds one entry per auction plus the early bids, not every bid as a general join's would; the output is the same,
/// append-only. Keyed state: on the RocksDB backend all of it is in RocksDB.
/// </summary>
[Pipeline("nexmark-q20")]
public static partial class Q20
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("auctions-and-bids", From = "events")] public static bool IsAuctionOrBid(Event e) => e.Type is EventType.Auction or EventType.Bid;

    [Map("by-auction", From = "auctions-and-bids")] public static AuctionOrBid ByAuction(Event e) => AuctionOrBid.Of(e);

    [UpdateState("join", From = "by-auction", Key = nameof(AuctionOrBid.AuctionId))]
    public static Q20Row[] Join(long auction, AuctionOrBid e, KeyedState<AuctionBids> state)
    {
        var known = state.Exists ? state.Value : null;
        if (e.Auction is { } a)
        {
            // The auction arrives: the bids that waited for it join now, and from here on bids join as they come.
            var waiting = known?.Waiting ?? new List<Bid>();
            bool selected = a.Category == 10;
            state.Update(new AuctionBids { Auction = selected ? a : null, Seen = true });
            return selected ? waiting.Select(b => new Q20Row(b, a)).ToArray() : Array.Empty<Q20Row>();
        }

        var bid = e.Bid!;
        if (known is { Seen: true }) return known.Auction is { } joined ? new[] { new Q20Row(bid, joined) } : Array.Empty<Q20Row>();
        state.Update(new AuctionBids { Waiting = new List<Bid>(known?.Waiting ?? new List<Bid>()) { bid } });
        return Array.Empty<Q20Row>();
    }

    [FlatMap("rows", From = "join")] public static IEnumerable<Q20Row> Rows(Q20Row[] rows) => rows;

    [Sink("out", From = "rows")] public static partial Sink<Q20Row> Out();
}

/// <summary>
/// q23: every bid by a person who also sells, with the person and each of their auctions: bid ⋈ person on
/// <c>P.id = B.bidder</c> ⋈ auction on <c>A.seller = B.bidder</c>, two chained unbounded joins (regular SQL joins: all
/// three inputs are kept, so a late-coming person or auction still meets every earlier bid). Each side keeps only the
/// columns the query outputs.
/// </summary>
[Pipeline("nexmark-q23")]
public static partial class Q23
{
    [Source("events")] public static partial Source<Event> Events();

    [FlatMap("bids", From = "events")]
    public static IEnumerable<BidderBid> Bids(Event e) => e.Bid is { } b ? new[] { BidderBid.Of(b) } : Array.Empty<BidderBid>();

    [FlatMap("persons", From = "events")]
    public static IEnumerable<Person> Persons(Event e) => e.Person is { } p ? new[] { p } : Array.Empty<Person>();

    [FlatMap("auctions", From = "events")]
    public static IEnumerable<SellerItem> Auctions(Event e) => e.Auction is { } a ? new[] { SellerItem.Of(a) } : Array.Empty<SellerItem>();

    [StreamJoin("bid-person", Left = "bids", Right = "persons", LeftKey = nameof(BidderBid.Bidder), RightKey = nameof(Person.Id))]
    public static BidderWithPerson WithPerson(BidderBid b, Person p) => new(b, p);

    [StreamJoin("with-auction", Left = "bid-person", Right = "auctions", LeftKey = nameof(BidderWithPerson.Bidder), RightKey = nameof(SellerItem.Seller))]
    public static Q23Row WithAuction(BidderWithPerson bp, SellerItem a) => new(bp.B, bp.P, a);

    [Sink("out", From = "with-auction")] public static partial Sink<Q23Row> Out();
}

/// <summary>
/// q17: auction statistics per (auction, day): bid counts in total and per price rank, and the minimum,
/// maximum, average (integer, as SQL's AVG of BIGINT) and sum of the price. An updating aggregate: each bid
/// emits its key's new row, so the last row per key is the result.
/// </summary>
[Pipeline("nexmark-q17")]
public static partial class Q17
{
    private const long MsPerDay = 86_400_000;

    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("by-auction-day", From = "bids")]
    public static AuctionDayPrice ByAuctionDay(Event e) => new(new AuctionDay(e.Bid!.Auction, e.Bid.DateTime / MsPerDay), e.Bid.Price);

    [UpdateState("statistics", From = "by-auction-day", Key = nameof(AuctionDayPrice.Key))]
    public static Q17Row Statistics(AuctionDay key, AuctionDayPrice bid, KeyedState<AuctionStatistics> state)
    {
        var s = state.Exists ? state.Value : new AuctionStatistics(0, 0, 0, 0, long.MaxValue, long.MinValue, 0);
        long p = bid.Price;
        s = new AuctionStatistics(s.Total + 1, s.Rank1 + (p < 10_000 ? 1 : 0), s.Rank2 + (p is >= 10_000 and < 1_000_000 ? 1 : 0), s.Rank3 + (p >= 1_000_000 ? 1 : 0),
            Math.Min(s.Min, p), Math.Max(s.Max, p), s.Sum + p);
        state.Update(s);
        return new Q17Row(key.Auction, key.Day * MsPerDay, s.Total, s.Rank1, s.Rank2, s.Rank3, s.Min, s.Max, s.Sum / s.Total, s.Sum);
    }

    [Sink("out", From = "statistics")] public static partial Sink<Q17Row> Out();
}

/// <summary>
/// q18: the last bid per (bidder, auction) by time, the first to arrive among equal times (SQL's ROW_NUMBER
/// over dateTime DESC, rank 1). Updating: a newer bid emits itself. The state keeps only the time of the
/// key's last bid, because the row a change emits is the arriving bid.
/// </summary>
[Pipeline("nexmark-q18")]
public static partial class Q18
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("by-bidder-auction", From = "bids")]
    public static BidderAuctionBid ByBidderAuction(Event e) => new(new BidderAuction(e.Bid!.Bidder, e.Bid.Auction), e.Bid);

    [UpdateState("last-bid", From = "by-bidder-auction", Key = nameof(BidderAuctionBid.Key))]
    public static Q18Row? LastBid(BidderAuction key, BidderAuctionBid bid, KeyedState<long> lastTime)
    {
        if (lastTime.Exists && bid.Bid.DateTime <= lastTime.Value) return null;
        lastTime.Update(bid.Bid.DateTime);
        return new Q18Row(bid.Bid);
    }

    [Sink("out", From = "last-bid")] public static partial Sink<Q18Row> Out();
}

/// <summary>q21: add channel id, from the channel name for the four hot channels, else from the URL.</summary>
[Pipeline("nexmark-q21")]
public static partial class Q21
{
    private static readonly Regex ChannelId = new("(&|^)channel_id=([^&]*)", RegexOptions.CultureInvariant | RegexOptions.Compiled);

    [Source("events")] public static partial Source<Event> Events();

    [FlatMap("channel-ids", From = "events")]
    public static IEnumerable<Q21Row> ChannelIds(Event e)
    {
        if (e.Bid is not { } b) return Array.Empty<Q21Row>();
        string? id = b.Channel.ToLowerInvariant() switch
        {
            "apple" => "0",
            "google" => "1",
            "facebook" => "2",
            "baidu" => "3",
            _ => ChannelId.Match(b.Url) is { Success: true } m ? m.Groups[2].Value : null,
        };
        return id is null ? Array.Empty<Q21Row>() : new[] { new Q21Row(b.Auction, b.Bidder, b.Price, b.Channel, id) };
    }

    [Sink("out", From = "channel-ids")] public static partial Sink<Q21Row> Out();
}

/// <summary>q22: get URL directories, elements 3 to 5 of the bid URL split on '/'.</summary>
[Pipeline("nexmark-q22")]
public static partial class Q22
{
    [Source("events")] public static partial Source<Event> Events();

    [Filter("bids", From = "events")] public static bool IsBid(Event e) => e.Type == EventType.Bid;

    [Map("directories", From = "bids")]
    public static Q22Row Directories(Event e)
    {
        var b = e.Bid!;
        return new Q22Row(b.Auction, b.Bidder, b.Price, b.Channel, SplitIndex(b.Url, 3), SplitIndex(b.Url, 4), SplitIndex(b.Url, 5));
    }

    /// <summary>Element <paramref name="index"/> of <paramref name="url"/> split on '/' (as Split would give it), without splitting the rest.</summary>
    private static string SplitIndex(string url, int index)
    {
        int start = 0;
        for (int i = 0; i < index; i++)
        {
            int slash = url.IndexOf('/', start);
            if (slash < 0) throw new IndexOutOfRangeException($"The URL '{url}' has fewer than {index + 1} parts.");
            start = slash + 1;
        }

        int end = url.IndexOf('/', start);
        return url[start..(end < 0 ? url.Length : end)];
    }

    [Sink("out", From = "directories")] public static partial Sink<Q22Row> Out();
}
