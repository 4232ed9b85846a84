using System.Globalization;
using PipelineDsl;
using PipelineDsl.Nexmark;

namespace PipelineDsl.Samples.Nexmark;

// The rows the queries emit and the intermediate records they keep in state. Every output row has a
// canonical CSV form (invariant culture): the tests compare it with the plain references line by line.

/// <summary>A query's output row.</summary>
public interface IRow
{
    /// <summary>The row as one CSV line (invariant culture).</summary>
    string ToCsv();
}

internal static class Csv
{
    public static string Of(params object?[] values) =>
        string.Join(",", values.Select(v => Convert.ToString(v, CultureInfo.InvariantCulture)));
}

/// <summary>q0: a bid passed through.</summary>
public sealed record Q0Row(long Auction, long Bidder, long Price, long DateTime, string Extra) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Bidder, Price, DateTime, Extra);
}

/// <summary>q1: the price in euros, DECIMAL(23,3).</summary>
public sealed record Q1Row(long Auction, long Bidder, decimal Price, long DateTime, string Extra) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Bidder, Price.ToString("F3", CultureInfo.InvariantCulture), DateTime, Extra);
}

/// <summary>q2: a bid on one of the selected auctions.</summary>
public sealed record Q2Row(long Auction, long Price) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Price);
}

/// <summary>q3: a seller in OR, ID or CA with an auction in category 10.</summary>
public sealed record Q3Row(string Name, string City, string State, long AuctionId) : IRow
{
    public string ToCsv() => Csv.Of(Name, City, State, AuctionId);
}

/// <summary>
/// q3's join input: the columns of an auction the query reads. Like a SQL planner pruning unused columns
/// before a join, the queries keep only these in the join's state (and so in its checkpoints).
/// </summary>
[StateContract]
public sealed partial record SellerAuction([property: Field(0)] long Id, [property: Field(1)] long Seller);

/// <summary>q3's join input: the columns of a person the query reads.</summary>
[StateContract]
public sealed partial record SellerInfo([property: Field(0)] long Id, [property: Field(1)] string Name, [property: Field(2)] string City, [property: Field(3)] string State);

/// <summary>q4 and q6's join input: the columns of an auction they read.</summary>
[StateContract]
public sealed partial record OpenAuction(
    [property: Field(0)] long Id,
    [property: Field(1)] long Category,
    [property: Field(2)] long Seller,
    [property: Field(3)] long DateTime,
    [property: Field(4)] long Expires)
{
    /// <summary>The columns q4 and q6 read of <paramref name="a"/>.</summary>
    public static OpenAuction Of(Auction a) => new(a.Id, a.Category, a.Seller, a.DateTime, a.Expires);
}

/// <summary>q4 and q6's join input: the columns of a bid they read.</summary>
[StateContract]
public sealed partial record BidPrice([property: Field(0)] long Auction, [property: Field(1)] long Price, [property: Field(2)] long DateTime)
{
    /// <summary>The columns q4 and q6 read of <paramref name="b"/>.</summary>
    public static BidPrice Of(Bid b) => new(b.Auction, b.Price, b.DateTime);
}

/// <summary>A bid matched with its auction while the auction was open (q4, q6).</summary>
[StateContract]
public sealed partial record AuctionBid(
    [property: Field(0)] long AuctionId,
    [property: Field(1)] long Category,
    [property: Field(2)] long Seller,
    [property: Field(3)] long Expires,
    [property: Field(4)] long Price,
    [property: Field(5)] long BidTime)
{
    /// <summary>A bid matched with its open auction.</summary>
    public static AuctionBid Of(OpenAuction a, BidPrice b) => new(a.Id, a.Category, a.Seller, a.Expires, b.Price, b.DateTime);
}

/// <summary>q4: a change of an auction's highest bid.</summary>
public sealed record MaxChange(long Category, long Previous, long Current, bool First);

/// <summary>q4 state per category: the sum and count of the auctions' highest bids.</summary>
[StateContract]
public partial record struct CategoryTotals([property: Field(0)] long Sum, [property: Field(1)] long Count);

/// <summary>q4 state per auction: its highest bid so far.</summary>
[StateContract]
public partial record struct AuctionMax([property: Field(0)] long Category, [property: Field(1)] long Max);

/// <summary>q4: the average of the highest bids of a category's auctions (an update; the last per category is final).</summary>
public sealed record Q4Row(long Category, long Average) : IRow
{
    public string ToCsv() => Csv.Of(Category, Average);
}

/// <summary>q5: bids counted per auction in a window.</summary>
[StateContract]
public sealed partial record AuctionCount([property: Field(0)] long Auction, [property: Field(1)] long Count, [property: Field(2)] long DateTime);

/// <summary>q5: the auctions with the most bids in one window.</summary>
public sealed record HotItems(long WindowStart, long WindowEnd, long Count, long[] Auctions);

/// <summary>q5: a hot auction of a window.</summary>
public sealed record Q5Row(long Auction, long Num, long WindowStart, long WindowEnd) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Num, WindowStart, WindowEnd);
}

/// <summary>q6 state per seller: the winning prices of its last closed auctions, oldest first.</summary>
[StateContract]
public sealed partial class SellerPrices
{
    [Field(0)] public List<long> Prices { get; set; } = new();
}

/// <summary>q6: a seller's average selling price over its last (up to 11) closed auctions, after one closed.</summary>
public sealed record Q6Row(long Seller, long Auction, long AveragePrice) : IRow
{
    public string ToCsv() => Csv.Of(Seller, Auction, AveragePrice);
}

/// <summary>q7: the bids at the highest price seen so far in a window (all of them: ties are kept).</summary>
[StateContract]
public sealed partial record MaxBids([property: Field(0)] long Price, [property: Field(1)] long DateTime, [property: Field(2)] int Group, [property: Field(3)] Bid[] Bids);

/// <summary>q7: the highest price of a 10 s window, at the window's end.</summary>
[StateContract]
public sealed partial record WindowMax([property: Field(0)] long MaxPrice, [property: Field(1)] long WindowEnd);

/// <summary>q7: a bid with the highest price of its window.</summary>
public sealed record Q7Row(long Auction, long Price, long Bidder, long DateTime, string Extra) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Price, Bidder, DateTime, Extra);
}

/// <summary>q8: a person registering, as a window input.</summary>
[StateContract]
public sealed partial record NewPerson([property: Field(0)] long Id, [property: Field(1)] string Name, [property: Field(2)] long DateTime);

/// <summary>q8: a seller opening an auction, as a window input.</summary>
[StateContract]
public sealed partial record NewSeller([property: Field(0)] long Seller, [property: Field(1)] long DateTime);

/// <summary>q8: a person of one 10 s window.</summary>
[StateContract]
public sealed partial record PersonInWindow([property: Field(0)] long Id, [property: Field(1)] string Name, [property: Field(2)] long Start, [property: Field(3)] long End);

/// <summary>q8: a seller of one 10 s window.</summary>
[StateContract]
public sealed partial record SellerInWindow([property: Field(0)] long Seller, [property: Field(1)] long Start, [property: Field(2)] long End);

/// <summary>q8: a person who registered and opened an auction in the same 10 s window.</summary>
public sealed record Q8Row(long Id, string Name, long StartTime) : IRow
{
    public string ToCsv() => Csv.Of(Id, Name, StartTime);
}

/// <summary>q9: an auction with its bid so far (the winning one once the auction closed).</summary>
[StateContract]
public sealed partial record AuctionWithBid([property: Field(0)] Auction Auction, [property: Field(1)] Bid Bid);

/// <summary>q9: an auction and its winning bid (highest price, earliest on ties).</summary>
public sealed record Q9Row(Auction A, Bid B) : IRow
{
    public string ToCsv() => Csv.Of(A.Id, A.ItemName, A.Description, A.InitialBid, A.Reserve, A.DateTime, A.Expires, A.Seller, A.Category, A.Extra,
        B.Auction, B.Bidder, B.Price, B.DateTime, B.Extra);
}

/// <summary>q11: bids counted per bidder session.</summary>
[StateContract]
public sealed partial record BidderCount([property: Field(0)] long Bidder, [property: Field(1)] long Count, [property: Field(2)] long DateTime);

/// <summary>q11: one bidder session.</summary>
public sealed record Q11Row(long Bidder, long BidCount, long StartTime, long EndTime) : IRow
{
    public string ToCsv() => Csv.Of(Bidder, BidCount, StartTime, EndTime);
}

/// <summary>q13: a bid with its side-input value.</summary>
public sealed record Q13Row(long Auction, long Bidder, long Price, long DateTime, string Value) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Bidder, Price, DateTime, Value);
}

/// <summary>q14: a converted bid with its time of day and the number of 'c' in its extra.</summary>
public sealed record Q14Row(long Auction, long Bidder, decimal Price, string BidTimeType, long DateTime, string Extra, long CCounts) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Bidder, Price.ToString("F3", CultureInfo.InvariantCulture), BidTimeType, DateTime, Extra, CCounts);
}

/// <summary>q21: a bid with its channel id.</summary>
public sealed record Q21Row(long Auction, long Bidder, long Price, string Channel, string ChannelId) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Bidder, Price, Channel, ChannelId);
}

/// <summary>q22: a bid with the directories of its URL.</summary>
public sealed record Q22Row(long Auction, long Bidder, long Price, string Channel, string Dir1, string Dir2, string Dir3) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Bidder, Price, Channel, Dir1, Dir2, Dir3);
}

/// <summary>q17's key: an auction and a day (days since the Unix epoch, UTC).</summary>
[StateContract]
public partial record struct AuctionDay([property: Field(0)] long Auction, [property: Field(1)] long Day);

/// <summary>q17: a bid's price under its (auction, day) key.</summary>
public sealed record AuctionDayPrice(AuctionDay Key, long Price);

/// <summary>q17 state per (auction, day): bid counts (total and per price rank) and price statistics.</summary>
[StateContract]
public partial record struct AuctionStatistics(
    [property: Field(0)] long Total, [property: Field(1)] long Rank1, [property: Field(2)] long Rank2, [property: Field(3)] long Rank3,
    [property: Field(4)] long Min, [property: Field(5)] long Max, [property: Field(6)] long Sum);

/// <summary>q17: the statistics of one auction on one day (<paramref name="DayStart"/> in ms, shown as yyyy-MM-dd).</summary>
public sealed record Q17Row(long Auction, long DayStart, long TotalBids, long Rank1Bids, long Rank2Bids, long Rank3Bids, long MinPrice, long MaxPrice, long AvgPrice, long SumPrice) : IRow
{
    public string ToCsv() => Csv.Of(Auction, Day.Format(DayStart), TotalBids, Rank1Bids, Rank2Bids, Rank3Bids, MinPrice, MaxPrice, AvgPrice, SumPrice);
}

/// <summary>q18's key: a bidder and an auction.</summary>
[StateContract]
public partial record struct BidderAuction([property: Field(0)] long Bidder, [property: Field(1)] long Auction);

/// <summary>q18: a bid under its (bidder, auction) key.</summary>
public sealed record BidderAuctionBid(BidderAuction Key, Bid Bid);

/// <summary>q18: the last bid of a bidder on an auction (all bid columns).</summary>
public sealed record Q18Row(Bid B) : IRow
{
    public string ToCsv() => Csv.Of(B.Auction, B.Bidder, B.Price, B.Channel, B.Url, B.DateTime, B.Extra);
}

/// <summary>
/// q15: a bid with its day and price rank (1: price &lt; 10,000; 2: &lt; 1,000,000; 3: the rest), and the distinct
/// counts it raises (bit 0: in total, bit r: in rank r), set by the distinct stages.
/// </summary>
public sealed record RankedBid(long Day, long Bidder, long Auction, int Rank, byte NewBidder = 0, byte NewAuction = 0)
{
    public const long MsPerDay = 86_400_000;

    public static RankedBid Of(Bid b) =>
        new(b.DateTime / MsPerDay, b.Bidder, b.Auction, b.Price < 10_000 ? 1 : b.Price < 1_000_000 ? 2 : 3);

    public DayId DayBidder => new(Day, Bidder);

    public DayId DayAuction => new(Day, Auction);

    /// <summary>Marks <paramref name="rank"/> (and "any rank") as seen for a key; returns the bits that were not seen before.</summary>
    public static byte MarkSeen(KeyedState<byte> ranksSeen, int rank)
    {
        byte now = (byte)(1 | 1 << rank);
        byte fresh = (byte)(now & ~ranksSeen.Value);
        if (fresh != 0) ranksSeen.Update((byte)(ranksSeen.Value | now));
        return fresh;
    }
}

/// <summary>q15's distinct-stage key: a day and a bidder or an auction.</summary>
[StateContract]
public partial record struct DayId([property: Field(0)] long Day, [property: Field(1)] long Id);

/// <summary>q15 state per day: bids, distinct bidders and distinct auctions, each in total and per rank.</summary>
[StateContract]
public partial record struct BidStatistics(
    [property: Field(0)] long Bids, [property: Field(1)] long Rank1Bids, [property: Field(2)] long Rank2Bids, [property: Field(3)] long Rank3Bids,
    [property: Field(4)] long Bidders, [property: Field(5)] long Rank1Bidders, [property: Field(6)] long Rank2Bidders, [property: Field(7)] long Rank3Bidders,
    [property: Field(8)] long Auctions, [property: Field(9)] long Rank1Auctions, [property: Field(10)] long Rank2Auctions, [property: Field(11)] long Rank3Auctions)
{
    /// <summary>These statistics with <paramref name="bid"/> counted.</summary>
    public readonly BidStatistics Add(RankedBid bid)
    {
        static long Bit(byte flags, int bit) => flags >> bit & 1;
        return new BidStatistics(
            Bids + 1, Rank1Bids + (bid.Rank == 1 ? 1 : 0), Rank2Bids + (bid.Rank == 2 ? 1 : 0), Rank3Bids + (bid.Rank == 3 ? 1 : 0),
            Bidders + Bit(bid.NewBidder, 0), Rank1Bidders + Bit(bid.NewBidder, 1), Rank2Bidders + Bit(bid.NewBidder, 2), Rank3Bidders + Bit(bid.NewBidder, 3),
            Auctions + Bit(bid.NewAuction, 0), Rank1Auctions + Bit(bid.NewAuction, 1), Rank2Auctions + Bit(bid.NewAuction, 2), Rank3Auctions + Bit(bid.NewAuction, 3));
    }

    /// <summary>The twelve counts in q15's column order.</summary>
    public readonly object[] Counts() => new object[]
    {
        Bids, Rank1Bids, Rank2Bids, Rank3Bids, Bidders, Rank1Bidders, Rank2Bidders, Rank3Bidders, Auctions, Rank1Auctions, Rank2Auctions, Rank3Auctions,
    };
}

/// <summary>q15: the bidding statistics of one day (<paramref name="DayStart"/> in ms, shown as yyyy-MM-dd).</summary>
public sealed record Q15Row(long DayStart, BidStatistics S) : IRow
{
    public string ToCsv() => Csv.Of(new object[] { Day.Format(DayStart) }.Concat(S.Counts()).ToArray());
}

internal static class Day
{
    public static string Format(long dayStartMs) => DateTimeOffset.FromUnixTimeMilliseconds(dayStartMs).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}

/// <summary>
/// q16: a bid with its channel, day, minute of the day and price rank, and (as q15's) the distinct-count bits its
/// (channel, day, bidder) and (channel, day, auction) stages found new.
/// </summary>
public sealed record ChannelRankedBid(string Channel, long Day, int Minute, long Bidder, long Auction, int Rank, byte NewBidder = 0, byte NewAuction = 0)
{
    public static ChannelRankedBid Of(Bid b) =>
        new(b.Channel, b.DateTime / RankedBid.MsPerDay, (int)(b.DateTime % RankedBid.MsPerDay / 60_000), b.Bidder, b.Auction,
            b.Price < 10_000 ? 1 : b.Price < 1_000_000 ? 2 : 3);

    public ChannelDayId ChannelDayBidder => new(Channel, Day, Bidder);

    public ChannelDayId ChannelDayAuction => new(Channel, Day, Auction);

    public ChannelDay Key => new(Channel, Day);

    /// <summary>As a q15 bid, for the statistics q15 and q16 share.</summary>
    public RankedBid AsRanked() => new(Day, Bidder, Auction, Rank, NewBidder, NewAuction);
}

/// <summary>q16's distinct-stage key: a channel, a day and a bidder or an auction.</summary>
[StateContract]
public partial record struct ChannelDayId([property: Field(0)] string Channel, [property: Field(1)] long Day, [property: Field(2)] long Id);

/// <summary>q16's key: a channel and a day.</summary>
[StateContract]
public partial record struct ChannelDay([property: Field(0)] string Channel, [property: Field(1)] long Day);

/// <summary>q16 state per (channel, day): q15's statistics and the latest minute of the day a bid came in.</summary>
[StateContract]
public partial record struct ChannelStatistics([property: Field(0)] BidStatistics S, [property: Field(1)] int MaxMinute);

/// <summary>q16: the statistics of one channel on one day, with <c>max(HH:mm)</c> of its bids.</summary>
public sealed record Q16Row(string Channel, long DayStart, int MaxMinute, BidStatistics S) : IRow
{
    public string ToCsv() =>
        Csv.Of(new object[] { Channel, Day.Format(DayStart), $"{MaxMinute / 60:D2}:{MaxMinute % 60:D2}" }.Concat(S.Counts()).ToArray());
}

/// <summary>q19 state per auction: its best bids, at most 10, by price descending, the earlier first among equal prices.</summary>
[StateContract]
public sealed partial class TopBids
{
    [Field(0)] public List<Bid> Bids { get; set; } = new();
}

/// <summary>q19: a bid at its rank (1 to 10) among its auction's bids by price.</summary>
public sealed record Q19Row(Bid B, int RankNumber) : IRow
{
    public string ToCsv() => Csv.Of(B.Auction, B.Bidder, B.Price, B.Channel, B.Url, B.DateTime, B.Extra, RankNumber);
}

/// <summary>q20's input: an auction or a bid, by the auction it is about.</summary>
public sealed record AuctionOrBid(long AuctionId, Auction? Auction, Bid? Bid)
{
    public static AuctionOrBid Of(Event e) => e.Auction is { } a ? new(a.Id, a, null) : new(e.Bid!.Auction, null, e.Bid);
}

/// <summary>
/// q20 state per auction: whether the auction was seen and, when it is in category 10, the auction itself; before it is
/// seen, the bids that named it.
/// </summary>
[StateContract]
public sealed partial class AuctionBids
{
    [Field(0)] public Auction? Auction { get; set; }

    [Field(1)] public bool Seen { get; set; }

    [Field(2)] public List<Bid> Waiting { get; set; } = new();
}

/// <summary>q20: a bid's columns followed by its auction's.</summary>
public sealed record Q20Row(Bid B, Auction A) : IRow
{
    public string ToCsv() => Csv.Of(B.Auction, B.Bidder, B.Price, B.Channel, B.Url, B.DateTime, B.Extra,
        A.Id, A.ItemName, A.Description, A.InitialBid, A.Reserve, A.DateTime, A.Expires, A.Seller, A.Category, A.Extra);
}

/// <summary>q10: a bid with its UTC date and minute, the columns the files are partitioned by.</summary>
public sealed record Q10Row(long Auction, long Bidder, long Price, long DateTime, string Extra, string Dt, string Hm) : IRow
{
    public static Q10Row Of(Bid b)
    {
        var time = DateTimeOffset.FromUnixTimeMilliseconds(b.DateTime);
        return new(b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra,
            time.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), time.ToString("HH:mm", CultureInfo.InvariantCulture));
    }

    public string ToCsv() => Csv.Of(Auction, Bidder, Price, DateTime, Extra, Dt, Hm);
}

/// <summary>q23's join input: the columns of a bid the query outputs.</summary>
[StateContract]
public sealed partial record BidderBid(
    [property: Field(0)] long Bidder, [property: Field(1)] long Price, [property: Field(2)] string Channel, [property: Field(3)] string Url, [property: Field(4)] string Extra)
{
    public static BidderBid Of(Bid b) => new(b.Bidder, b.Price, b.Channel, b.Url, b.Extra);
}

/// <summary>q23's join input: the columns of an auction the query outputs (its id is not among them).</summary>
[StateContract]
public sealed partial record SellerItem(
    [property: Field(0)] long Seller, [property: Field(1)] string ItemName, [property: Field(2)] string Description, [property: Field(3)] long InitialBid,
    [property: Field(4)] long Reserve, [property: Field(5)] long DateTime, [property: Field(6)] long Expires, [property: Field(7)] long Category,
    [property: Field(8)] string Extra)
{
    public static SellerItem Of(Auction a) => new(a.Seller, a.ItemName, a.Description, a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Category, a.Extra);
}

/// <summary>q23: a bid joined with its bidder, waiting for the bidder's auctions.</summary>
[StateContract]
public sealed partial record BidderWithPerson([property: Field(0)] BidderBid B, [property: Field(1)] Person P)
{
    public long Bidder => B.Bidder;
}

/// <summary>q23's 21 columns: the bid's, the person's, the auction's.</summary>
public sealed record Q23Row(BidderBid B, Person P, SellerItem A) : IRow
{
    public string ToCsv() => Csv.Of(B.Bidder, B.Price, B.Channel, B.Url, B.Extra,
        P.Id, P.Name, P.EmailAddress, P.CreditCard, P.City, P.State, P.Extra,
        A.ItemName, A.Description, A.InitialBid, A.Reserve, A.DateTime, A.Expires, A.Seller, A.Category, A.Extra);
}

/// <summary>q12: a bidder's bids counted, stamped with the processing time (batch time) they were read at.</summary>
[StateContract]
public sealed partial record BidderAt([property: Field(0)] long Bidder, [property: Field(1)] long Count, [property: Field(2)] long ProcessingTime);

/// <summary>q12: a bidder's bid count in one 10 s window of processing time.</summary>
public sealed record Q12Row(long Bidder, long BidCount, long StartTime, long EndTime) : IRow
{
    public string ToCsv() => Csv.Of(Bidder, BidCount, StartTime, EndTime);
}
