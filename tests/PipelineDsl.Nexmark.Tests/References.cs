using System.Text.RegularExpressions;
using PipelineDsl.Nexmark;
using PipelineDsl.Samples.Nexmark;

namespace PipelineDsl.Nexmark.Tests;

/// <summary>
/// Plain, framework-free implementations of the queries over an in-order sequence of events: whole-input
/// loops and dictionaries, no PipelineDsl types. Each returns the query's rows; for updating queries (q4)
/// the final row per key. The tests compare their CSV forms. The benchmark links this file to measure the same code.
/// </summary>
public static class References
{
    public static readonly IReadOnlyDictionary<string, Func<IEnumerable<Event>, List<IRow>>> ByQuery = new Dictionary<string, Func<IEnumerable<Event>, List<IRow>>>
    {
        ["q0"] = Q0, ["q1"] = Q1, ["q2"] = Q2, ["q3"] = Q3, ["q4"] = Q4, ["q5"] = Q5, ["q6"] = Q6, ["q7"] = Q7, ["q8"] = Q8,
        ["q9"] = Q9, ["q10"] = Q10, ["q11"] = Q11, ["q12"] = events => Q12(events, n => Q12BaseTime + n / 50_000 * 3_000), ["q13"] = Q13, ["q14"] = Q14, ["q15"] = Q15, ["q16"] = Q16, ["q17"] = Q17, ["q18"] = Q18, ["q19"] = Q19, ["q20"] = Q20, ["q21"] = Q21, ["q22"] = Q22, ["q23"] = Q23,
    };

    private static IEnumerable<Bid> Bids(IEnumerable<Event> events)
    {
        foreach (var e in events) if (e.Bid is { } b) yield return b;
    }

    public static List<IRow> Q0(IEnumerable<Event> events) =>
        Bids(events).Select(b => new Q0Row(b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra)).ToList<IRow>();

    public static List<IRow> Q1(IEnumerable<Event> events) =>
        Bids(events).Select(b => new Q1Row(b.Auction, b.Bidder, b.Price * 908m / 1000m, b.DateTime, b.Extra)).ToList<IRow>();

    public static List<IRow> Q2(IEnumerable<Event> events) =>
        Bids(events).Where(b => b.Auction % 123 == 0).Select(b => new Q2Row(b.Auction, b.Price)).ToList<IRow>();

    public static List<IRow> Q3(IEnumerable<Event> events)
    {
        var persons = new Dictionary<long, Person>();
        var auctions = new List<Auction>();
        foreach (var e in events)
        {
            if (e.Person is { State: "OR" or "ID" or "CA" } p) persons[p.Id] = p;
            if (e.Auction is { Category: 10 } a) auctions.Add(a);
        }

        return auctions.Where(a => persons.ContainsKey(a.Seller))
            .Select(a => persons[a.Seller]).Zip(auctions.Where(a => persons.ContainsKey(a.Seller)))
            .Select(pa => new Q3Row(pa.First.Name, pa.First.City, pa.First.State, pa.Second.Id)).ToList<IRow>();
    }

    /// <summary>For each auction, its bids with A.dateTime ≤ B.dateTime ≤ A.expires, in arrival order.</summary>
    private static (Dictionary<long, Auction> Auctions, Dictionary<long, List<Bid>> Matches) OpenAuctionBids(IEnumerable<Event> events)
    {
        var all = events.ToList();
        var auctions = all.Where(e => e.Auction is not null).ToDictionary(e => e.Auction!.Id, e => e.Auction!);
        var matches = new Dictionary<long, List<Bid>>();
        foreach (var b in Bids(all))
        {
            if (!auctions.TryGetValue(b.Auction, out var a) || b.DateTime < a.DateTime || b.DateTime > a.Expires) continue;
            if (!matches.TryGetValue(a.Id, out var list)) matches[a.Id] = list = new List<Bid>();
            list.Add(b);
        }

        return (auctions, matches);
    }

    public static List<IRow> Q4(IEnumerable<Event> events)
    {
        var (auctions, matches) = OpenAuctionBids(events);
        return matches.GroupBy(m => auctions[m.Key].Category)
            .Select(g => new Q4Row(g.Key, g.Sum(m => m.Value.Max(b => b.Price)) / g.Count())).ToList<IRow>();
    }

    public static List<IRow> Q5(IEnumerable<Event> events)
    {
        var counts = new Dictionary<long, Dictionary<long, long>>();
        foreach (var b in Bids(events))
        {
            for (long start = b.DateTime - b.DateTime % 2000; start > b.DateTime - 10_000; start -= 2000)
            {
                if (!counts.TryGetValue(start, out var window)) counts[start] = window = new Dictionary<long, long>();
                window[b.Auction] = window.GetValueOrDefault(b.Auction) + 1;
            }
        }

        var rows = new List<IRow>();
        foreach (var (start, window) in counts)
        {
            long max = window.Values.Max();
            rows.AddRange(window.Where(p => p.Value == max).Select(p => new Q5Row(p.Key, p.Value, start, start + 10_000)));
        }

        return rows;
    }

    /// <summary>Each auction's winning bid: the highest price, the earliest (then first arrived) on ties.</summary>
    private static List<(Auction Auction, Bid Bid)> Winners(IEnumerable<Event> events)
    {
        var (auctions, matches) = OpenAuctionBids(events);
        return matches.Select(m =>
        {
            var best = m.Value[0];
            foreach (var b in m.Value) if (b.Price > best.Price || (b.Price == best.Price && b.DateTime < best.DateTime)) best = b;
            return (auctions[m.Key], best);
        }).ToList();
    }

    public static List<IRow> Q6(IEnumerable<Event> events)
    {
        var rows = new List<IRow>();
        foreach (var seller in Winners(events).GroupBy(w => w.Auction.Seller))
        {
            var last = new List<long>();
            foreach (var (a, b) in seller.OrderBy(w => w.Auction.Expires).ThenBy(w => w.Auction.Id))
            {
                last.Add(b.Price);
                if (last.Count > 11) last.RemoveAt(0);
                rows.Add(new Q6Row(seller.Key, a.Id, last.Sum() / last.Count));
            }
        }

        return rows;
    }

    public static List<IRow> Q7(IEnumerable<Event> events)
    {
        var bids = Bids(events).ToList();
        var max = new Dictionary<long, long>();
        foreach (var b in bids)
        {
            long start = b.DateTime - b.DateTime % 10_000;
            max[start] = Math.Max(max.GetValueOrDefault(start), b.Price);
        }

        var rows = new List<IRow>();
        foreach (var (start, price) in max)
        {
            long end = start + 10_000;
            rows.AddRange(bids.Where(b => b.Price == price && b.DateTime >= end - 10_000 && b.DateTime <= end)
                .Select(b => new Q7Row(b.Auction, b.Price, b.Bidder, b.DateTime, b.Extra)));
        }

        return rows;
    }

    public static List<IRow> Q8(IEnumerable<Event> events)
    {
        var persons = new Dictionary<(long Window, long Id), string>();
        var sellers = new HashSet<(long Window, long Seller)>();
        foreach (var e in events)
        {
            if (e.Person is { } p) persons.TryAdd((p.DateTime - p.DateTime % 10_000, p.Id), p.Name);
            if (e.Auction is { } a) sellers.Add((a.DateTime - a.DateTime % 10_000, a.Seller));
        }

        return persons.Where(p => sellers.Contains(p.Key)).Select(p => new Q8Row(p.Key.Id, p.Value, p.Key.Window)).ToList<IRow>();
    }

    public static List<IRow> Q9(IEnumerable<Event> events) => Winners(events).Select(w => new Q9Row(w.Auction, w.Bid)).ToList<IRow>();

    public static List<IRow> Q11(IEnumerable<Event> events)
    {
        var rows = new List<IRow>();
        foreach (var bidder in Bids(events).GroupBy(b => b.Bidder))
        {
            var times = bidder.Select(b => b.DateTime).OrderBy(t => t).ToList();
            long start = times[0], last = times[0], count = 0;
            foreach (long t in times)
            {
                if (t - last > 10_000)
                {
                    rows.Add(new Q11Row(bidder.Key, count, start, last + 10_000));
                    start = t;
                    count = 0;
                }

                last = t;
                count++;
            }

            rows.Add(new Q11Row(bidder.Key, count, start, last + 10_000));
        }

        return rows;
    }

    public static List<IRow> Q13(IEnumerable<Event> events) =>
        Bids(events).Select(b => new Q13Row(b.Auction, b.Bidder, b.Price, b.DateTime, (b.Auction % 10_000).ToString(System.Globalization.CultureInfo.InvariantCulture))).ToList<IRow>();

    public static List<IRow> Q14(IEnumerable<Event> events)
    {
        var rows = new List<IRow>();
        foreach (var b in Bids(events))
        {
            decimal price = b.Price * 908m / 1000m;
            if (!(price > 1_000_000m && price < 50_000_000m)) continue;
            int hour = (int)(b.DateTime / 3_600_000 % 24);
            string type = hour is >= 8 and <= 18 ? "dayTime" : hour <= 6 || hour >= 20 ? "nightTime" : "otherTime";
            int c = 0;
            foreach (char ch in b.Extra) if (ch == 'c') c++;
            rows.Add(new Q14Row(b.Auction, b.Bidder, price, type, b.DateTime, b.Extra, c));
        }

        return rows;
    }

    /// <summary>q15 per day: bids, bidders and auctions, in total (index 0) and per price rank (1-3).</summary>
    private sealed class DayStatistics
    {
        public readonly long[] Bids = new long[4];
        public readonly HashSet<long>[] Bidders = Enumerable.Range(0, 4).Select(_ => new HashSet<long>()).ToArray();
        public readonly HashSet<long>[] Auctions = Enumerable.Range(0, 4).Select(_ => new HashSet<long>()).ToArray();
        public BidStatistics ToRowStatistics() => new(
            Bids[0], Bids[1], Bids[2], Bids[3], Bidders[0].Count, Bidders[1].Count, Bidders[2].Count, Bidders[3].Count,
            Auctions[0].Count, Auctions[1].Count, Auctions[2].Count, Auctions[3].Count);
    }

    /// <summary>Per UTC date: count(*) and count(distinct bidder / auction), in total and per price rank; the final row per day.</summary>
    public static List<IRow> Q15(IEnumerable<Event> events)
    {
        var days = new Dictionary<DateTime, DayStatistics>();
        foreach (var b in Bids(events))
        {
            var day = DateTimeOffset.FromUnixTimeMilliseconds(b.DateTime).UtcDateTime.Date;
            if (!days.TryGetValue(day, out var d)) days[day] = d = new DayStatistics();
            int rank = b.Price < 10_000 ? 1 : b.Price < 1_000_000 ? 2 : 3;
            foreach (int i in new[] { 0, rank })
            {
                d.Bids[i]++;
                d.Bidders[i].Add(b.Bidder);
                d.Auctions[i].Add(b.Auction);
            }
        }

        return days.Select(d => (IRow)new Q15Row(new DateTimeOffset(d.Key, TimeSpan.Zero).ToUnixTimeMilliseconds(), d.Value.ToRowStatistics())).ToList();
    }

    /// <summary>
    /// Per (channel, UTC date): q15's counts and distinct counts, and the greatest "HH:mm" (UTC) among the key's bids, as
    /// SQL's max over the formatted strings; the final row per key.
    /// </summary>
    public static List<IRow> Q16(IEnumerable<Event> events)
    {
        var keys = new Dictionary<(string Channel, DateTime Day), (DayStatistics Statistics, string MaxMinute)>();
        foreach (var b in Bids(events))
        {
            var time = DateTimeOffset.FromUnixTimeMilliseconds(b.DateTime).UtcDateTime;
            var key = (b.Channel, time.Date);
            if (!keys.TryGetValue(key, out var k)) k = (new DayStatistics(), "");
            int rank = b.Price < 10_000 ? 1 : b.Price < 1_000_000 ? 2 : 3;
            foreach (int i in new[] { 0, rank })
            {
                k.Statistics.Bids[i]++;
                k.Statistics.Bidders[i].Add(b.Bidder);
                k.Statistics.Auctions[i].Add(b.Auction);
            }

            string minute = time.ToString("HH:mm", System.Globalization.CultureInfo.InvariantCulture);
            keys[key] = (k.Statistics, string.CompareOrdinal(minute, k.MaxMinute) > 0 ? minute : k.MaxMinute);
        }

        return keys.Select(k => (IRow)new Q16Row(k.Key.Channel, new DateTimeOffset(k.Key.Day, TimeSpan.Zero).ToUnixTimeMilliseconds(),
            int.Parse(k.Value.MaxMinute[..2], System.Globalization.CultureInfo.InvariantCulture) * 60 + int.Parse(k.Value.MaxMinute[3..], System.Globalization.CultureInfo.InvariantCulture),
            k.Value.Statistics.ToRowStatistics())).ToList();
    }

    /// <summary>Per auction: its bids in arrival order, sorted by price descending (stable: the earlier first among equals), the first 10 with their rank.</summary>
    public static List<IRow> Q19(IEnumerable<Event> events)
    {
        var byAuction = new Dictionary<long, List<Bid>>();
        foreach (var b in Bids(events))
        {
            if (!byAuction.TryGetValue(b.Auction, out var list)) byAuction[b.Auction] = list = new List<Bid>();
            list.Add(b);
        }

        return byAuction.Values.SelectMany(list => list.OrderByDescending(b => b.Price).Take(10).Select((b, i) => (IRow)new Q19Row(b, i + 1))).ToList();
    }

    /// <summary>Every bid with its UTC date and minute, formatted as Flink's DATE_FORMAT(dateTime, 'yyyy-MM-dd') and 'HH:mm'.</summary>
    public static List<IRow> Q10(IEnumerable<Event> events) =>
        Bids(events).Select(b =>
        {
            var utc = DateTimeOffset.FromUnixTimeMilliseconds(b.DateTime).UtcDateTime;
            return (IRow)new Q10Row(b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra,
                $"{utc.Year:D4}-{utc.Month:D2}-{utc.Day:D2}", $"{utc.Hour:D2}:{utc.Minute:D2}");
        }).ToList();

    /// <summary>bid ⋈ person on id = bidder ⋈ auction on seller = bidder, over all events whatever their order.</summary>
    public static List<IRow> Q23(IEnumerable<Event> events)
    {
        var list = events.ToList();
        var persons = list.Where(e => e.Person is not null).ToDictionary(e => e.Person!.Id, e => e.Person!);
        var bySeller = list.Where(e => e.Auction is not null).GroupBy(e => e.Auction!.Seller).ToDictionary(g => g.Key, g => g.Select(e => e.Auction!).ToList());
        var rows = new List<IRow>();
        foreach (var b in Bids(list))
        {
            if (!persons.TryGetValue(b.Bidder, out var p) || !bySeller.TryGetValue(b.Bidder, out var auctions)) continue;
            foreach (var a in auctions) rows.Add(new Q23Row(BidderBid.Of(b), p, SellerItem.Of(a)));
        }

        return rows;
    }

    /// <summary>A processing time that is a multiple of 10 s (windows align with it), for the benchmark's q12.</summary>
    public const long Q12BaseTime = 1_800_000_000_000;

    /// <summary>
    /// Bids per bidder in tumbling 10 s windows of processing time, where event number <c>n</c> (its position in the one
    /// generator) was processed at <paramref name="processingTimeOf"/>(n); every window's final count.
    /// </summary>
    public static List<IRow> Q12(IEnumerable<Event> events, Func<long, long> processingTimeOf)
    {
        var counts = new Dictionary<(long Bidder, long Start), long>();
        long n = 0;
        foreach (var e in events)
        {
            long time = processingTimeOf(n++);
            if (e.Bid is not { } b) continue;
            var key = (b.Bidder, time - (time % 10_000 + 10_000) % 10_000);
            counts[key] = counts.GetValueOrDefault(key) + 1;
        }

        return counts.Select(c => (IRow)new Q12Row(c.Key.Bidder, c.Value, c.Key.Start, c.Key.Start + 10_000)).ToList();
    }

    /// <summary>The regular join of every bid with every auction of category 10 on <c>bid.auction = auction.id</c>, whatever their order.</summary>
    public static List<IRow> Q20(IEnumerable<Event> events)
    {
        var list = events.ToList();
        var auctions = list.Where(e => e.Auction is { Category: 10 }).ToDictionary(e => e.Auction!.Id, e => e.Auction!);
        return Bids(list).Where(b => auctions.ContainsKey(b.Auction)).Select(b => (IRow)new Q20Row(b, auctions[b.Auction])).ToList();
    }

    /// <summary>Per (auction, UTC date): counts in total and per price rank, min, max, integer average and sum; the final row per key.</summary>
    public static List<IRow> Q17(IEnumerable<Event> events)
    {
        var stats = new Dictionary<(long Auction, DateTime Day), List<long>>();
        foreach (var b in Bids(events))
        {
            var day = DateTimeOffset.FromUnixTimeMilliseconds(b.DateTime).UtcDateTime.Date;
            if (!stats.TryGetValue((b.Auction, day), out var prices)) stats[(b.Auction, day)] = prices = new List<long>();
            prices.Add(b.Price);
        }

        return stats.Select(s => (IRow)new Q17Row(s.Key.Auction, new DateTimeOffset(s.Key.Day, TimeSpan.Zero).ToUnixTimeMilliseconds(), s.Value.Count,
            s.Value.Count(p => p < 10_000), s.Value.Count(p => p >= 10_000 && p < 1_000_000), s.Value.Count(p => p >= 1_000_000),
            s.Value.Min(), s.Value.Max(), s.Value.Sum() / s.Value.Count, s.Value.Sum())).ToList();
    }

    /// <summary>Per (bidder, auction), the bid with the latest time (the earliest to arrive among equal times).</summary>
    public static List<IRow> Q18(IEnumerable<Event> events)
    {
        var last = new Dictionary<(long Bidder, long Auction), Bid>();
        foreach (var b in Bids(events))
        {
            if (!last.TryGetValue((b.Bidder, b.Auction), out var kept) || b.DateTime > kept.DateTime) last[(b.Bidder, b.Auction)] = b;
        }

        return last.Values.Select(b => (IRow)new Q18Row(b)).ToList();
    }

    public static List<IRow> Q21(IEnumerable<Event> events)
    {
        var rows = new List<IRow>();
        foreach (var b in Bids(events))
        {
            string? id = b.Channel.ToLowerInvariant() switch { "apple" => "0", "google" => "1", "facebook" => "2", "baidu" => "3", _ => null };
            if (id is null)
            {
                int at = b.Url.IndexOf("channel_id=", StringComparison.Ordinal);
                if (at >= 0 && (at == 0 || b.Url[at - 1] == '&'))
                {
                    int end = b.Url.IndexOf('&', at);
                    id = end < 0 ? b.Url[(at + 11)..] : b.Url[(at + 11)..end];
                }
            }

            if (id is not null) rows.Add(new Q21Row(b.Auction, b.Bidder, b.Price, b.Channel, id));
        }

        return rows;
    }

    public static List<IRow> Q22(IEnumerable<Event> events) =>
        Bids(events).Select(b =>
        {
            var p = b.Url.Split('/');
            return (IRow)new Q22Row(b.Auction, b.Bidder, b.Price, b.Channel, p[3], p[4], p[5]);
        }).ToList();
}
