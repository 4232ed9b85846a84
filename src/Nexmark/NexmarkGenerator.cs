using System;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace PipelineDsl.Nexmark;

/// <summary>
/// One Nexmark generator: event k of it is a pure function of k and the configuration (each event draws
/// from its own <c>java.util.Random</c> seeded with its event id), so any event can be generated alone, in
/// any order, on any thread, and a replayed range is identical. Follows <c>docs/nexmark/SPEC.md</c>.
/// </summary>
public sealed class NexmarkGenerator
{
    private const long FirstPersonId = 1000, FirstAuctionId = 1000, FirstCategoryId = 10, HotBatchSize = 100;
    private const int NumCategories = 5, IdLead = 10;

    private static readonly string[] FirstNames = { "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter" };
    private static readonly string[] LastNames = { "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris" };
    private static readonly string[] Cities = { "Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne" };
    private static readonly string[] States = { "AZ", "CA", "ID", "OR", "WA", "WY" };
    private static readonly string[] HotChannels = { "Google", "Facebook", "Baidu", "Apple" };

    private readonly NexmarkConfiguration _config;
    private readonly long _firstEventId;
    private readonly double _delayUs;
    private readonly int _p, _a, _t;
    private readonly long _auctionLengthEvents;

    /// <summary>Creates generator <paramref name="index"/> of <see cref="NexmarkConfiguration.NumEventGenerators"/>.</summary>
    /// <exception cref="ArgumentException">The configuration is invalid (the message names the option).</exception>
    public NexmarkGenerator(NexmarkConfiguration configuration, int index = 0)
    {
        if (configuration is null) throw new ArgumentNullException(nameof(configuration));
        configuration.Validate();
        int n = configuration.NumEventGenerators;
        if (index < 0 || index >= n) throw new ArgumentOutOfRangeException(nameof(index), index, $"The generator index must be between 0 and {n - 1}.");
        _config = configuration.Clone();
        Index = index;
        // F's GeneratorConfig.split: equal shares of the id space, the last generator takes the remainder.
        long max = configuration.MaxEvents;
        long share = max / n;
        _firstEventId = configuration.FirstEventId + index * share;
        Count = index == n - 1 ? max - (n - 1) * share : share;
        _delayUs = configuration.InterEventDelayUs;
        _p = configuration.PersonProportion;
        _a = configuration.AuctionProportion;
        _t = configuration.TotalProportion;
        _auctionLengthEvents = (long)configuration.NumInFlightAuctions * _t / _a;
    }

    /// <summary>This generator's index (its partition of the source).</summary>
    public int Index { get; }

    /// <summary>The number of events this generator produces.</summary>
    public long Count { get; }

    /// <summary>The event id of this generator's first event.</summary>
    public long FirstEventId => _firstEventId;

    /// <summary>Event time of (adjusted) event number <paramref name="m"/>: <c>baseTime + (long)(m × delayUs) / 1000</c>.</summary>
    public long TimestampOf(long m) => _config.BaseTime + (long)(m * _delayUs) / 1000;

    /// <summary>The generator's watermark after its k-th event: the un-jittered time of the start of its out-of-order block.</summary>
    public long WatermarkAt(long k)
    {
        long n = _config.FirstEventNumber + k;
        long g = _config.OutOfOrderGroupSize;
        return TimestampOf(n / g * g);
    }

    /// <summary>The event id of this generator's k-th event (after the out-of-order permutation).</summary>
    public long EventIdAt(long k) => _firstEventId + Adjusted(k);

    private long Adjusted(long k)
    {
        long n = _config.FirstEventNumber + k;
        long g = _config.OutOfOrderGroupSize;
        return unchecked(n / g * g + n * 953 % g);
    }

    /// <summary>The kind of event id <paramref name="eventId"/>.</summary>
    public EventType KindOf(long eventId)
    {
        long r = eventId % _t;
        return r < _p ? EventType.Person : r < _p + _a ? EventType.Auction : EventType.Bid;
    }

    /// <summary>Generates this generator's k-th event (0-based).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is negative or not below <see cref="Count"/>.</exception>
    public Event Generate(long k)
    {
        if ((ulong)k >= (ulong)Count) throw new ArgumentOutOfRangeException(nameof(k), k, $"Generator {Index} has events 0 to {Count - 1}.");
        long adj = Adjusted(k);
        long eventId = _firstEventId + adj;
        long time = TimestampOf(adj);
        var random = new JavaRandom(eventId);
        return KindOf(eventId) switch
        {
            EventType.Person => Event.Of(NewPerson(eventId, time, ref random)),
            EventType.Auction => Event.Of(NewAuction(eventId, adj, time, ref random)),
            _ => Event.Of(NewBid(eventId, time, ref random)),
        };
    }

    // ---- ids (spec 2.4) ----------------------------------------------------------------------------

    internal long LastPerson(long e)
    {
        long epoch = e / _t, offset = e % _t;
        if (offset >= _p) offset = _p - 1;
        return epoch * _p + offset;
    }

    internal long LastAuction(long e)
    {
        long epoch = e / _t, offset = e % _t;
        if (offset < _p)
        {
            epoch--;
            offset = _a - 1;
        }
        else if (offset >= _p + _a)
        {
            offset = _a - 1;
        }
        else
        {
            offset -= _p;
        }

        return epoch * _a + offset;
    }

    private long NextPerson(long e, ref JavaRandom random)
    {
        long next = LastPerson(e) + 1;
        long active = Math.Min(next, _config.NumActivePeople);
        return next - active + Bounded(active + IdLead, ref random);
    }

    private long NextAuction(long e, ref JavaRandom random)
    {
        long hi = LastAuction(e);
        long lo = Math.Max(hi - _config.NumInFlightAuctions, 0);
        return lo + Bounded(hi - lo + 1 + IdLead, ref random);
    }

    // ---- events (spec 2.6) ---------------------------------------------------------------------------

    private Person NewPerson(long e, long time, ref JavaRandom random)
    {
        long id = LastPerson(e) + FirstPersonId;
        string name = FirstNames[random.NextInt(FirstNames.Length)] + " " + LastNames[random.NextInt(LastNames.Length)];
        string email = Str(ref random, 7) + "@" + Str(ref random, 5) + ".com";
        string card = string.Concat(
            random.NextInt(10000).ToString("D4", CultureInfo.InvariantCulture), " ",
            random.NextInt(10000).ToString("D4", CultureInfo.InvariantCulture), " ",
            random.NextInt(10000).ToString("D4", CultureInfo.InvariantCulture), " ",
            random.NextInt(10000).ToString("D4", CultureInfo.InvariantCulture));
        string city = Cities[random.NextInt(Cities.Length)];
        string state = States[random.NextInt(States.Length)];
        int current = 8 + name.Length + email.Length + card.Length + city.Length + state.Length;
        string extra = Extra(ref random, current, _config.AvgPersonByteSize);
        return new Person { Id = id, Name = name, EmailAddress = email, CreditCard = card, City = city, State = state, DateTime = time, Extra = extra };
    }

    private Auction NewAuction(long e, long adj, long time, ref JavaRandom random)
    {
        long id = LastAuction(e) + FirstAuctionId;
        long seller = (random.NextInt(_config.HotSellersRatio) > 0 ? LastPerson(e) / HotBatchSize * HotBatchSize : NextPerson(e, ref random)) + FirstPersonId;
        long category = FirstCategoryId + random.NextInt(NumCategories);
        long initialBid = Price(ref random);
        long half = TimestampOf(adj + _auctionLengthEvents) - time;
        long expires = time + 1 + Bounded(Math.Max(half * 2, 1), ref random);
        string itemName = Str(ref random, 20);
        string description = Str(ref random, 100);
        long reserve = initialBid + Price(ref random);
        string extra = Extra(ref random, 48 + itemName.Length + description.Length, _config.AvgAuctionByteSize);
        return new Auction
        {
            Id = id, ItemName = itemName, Description = description, InitialBid = initialBid, Reserve = reserve,
            DateTime = time, Expires = expires, Seller = seller, Category = category, Extra = extra,
        };
    }

    private Bid NewBid(long e, long time, ref JavaRandom random)
    {
        long auction = (random.NextInt(_config.HotAuctionRatio) > 0 ? LastAuction(e) / HotBatchSize * HotBatchSize : NextAuction(e, ref random)) + FirstAuctionId;
        long bidder = (random.NextInt(_config.HotBiddersRatio) > 0 ? LastPerson(e) / HotBatchSize * HotBatchSize + 1 : NextPerson(e, ref random)) + FirstPersonId;
        long price = Price(ref random);
        string channel, url;
        var table = ChannelTable.Instance;
        if (random.NextInt(2) > 0)
        {
            int i = random.NextInt(HotChannels.Length);
            channel = HotChannels[i];
            url = table.HotUrls[i];
        }
        else
        {
            int c = random.NextInt(ChannelTable.Channels);
            channel = table.Names[c];
            url = table.Urls[c];
        }

        if (_config.FlinkDoubleBidderOffset) bidder += FirstPersonId;
        string extra = Extra(ref random, 32, _config.AvgBidByteSize);
        return new Bid { Auction = auction, Bidder = bidder, Price = price, Channel = channel, Url = url, DateTime = time, Extra = extra };
    }

    // ---- draws (spec 2.5) ----------------------------------------------------------------------------

    private static long Bounded(long n, ref JavaRandom random) =>
        n < int.MaxValue ? random.NextInt((int)n) : Math.Abs(random.NextLong() % n);

    internal static string Str(ref JavaRandom random, int max, char pad = ' ')
    {
        int length = 3 + random.NextInt(max - 3);
        Span<char> chars = stackalloc char[length];
        for (int i = 0; i < length; i++) chars[i] = random.NextInt(13) == 0 ? pad : (char)('a' + random.NextInt(26));
        return new string(chars.Trim(' '));
    }

    /// <summary>
    /// For r in [-675, 675], at r + 675: the characters of base-26 digits r % 26 and r / 26 (C#'s truncating / and
    /// %, like Java's, so a negative r gives characters below 'a' as Java does), as two UTF-16 units in memory order.
    /// </summary>
    private static readonly uint[] DigitPairs = BuildDigitPairs();

    private static uint[] BuildDigitPairs()
    {
        var pairs = new uint[1351];
        for (int r = -675; r <= 675; r++)
        {
            uint low = (ushort)('a' + r % 26), high = (ushort)('a' + r / 26);
            pairs[r + 675] = BitConverter.IsLittleEndian ? low | high << 16 : high | low << 16;
        }

        return pairs;
    }

    internal static string Exact(ref JavaRandom random, int length)
    {
        if (length <= 0) return "";
        Span<char> chars = length <= 512 ? stackalloc char[length] : new char[length];
        int i = 0;
        // Java takes six base-26 digits from each nextInt(), least significant first, by repeated truncating
        // division. Truncating division composes (v/26/26 == v/676), so the digits come two at a time from
        // v's remainders modulo 676 (by independent divisions by constants, which the CPU overlaps), and a
        // table turns each remainder into its two characters in one store.
        ref char first = ref MemoryMarshal.GetReference(chars);
        for (; i + 6 <= length; i += 6)
        {
            int v = random.NextInt();
            int q1 = v / 676, q2 = v / 456_976, q3 = v / 308_915_776;
            Unsafe.WriteUnaligned(ref Unsafe.As<char, byte>(ref Unsafe.Add(ref first, i)), DigitPairs[v - q1 * 676 + 675]);
            Unsafe.WriteUnaligned(ref Unsafe.As<char, byte>(ref Unsafe.Add(ref first, i + 2)), DigitPairs[q1 - q2 * 676 + 675]);
            Unsafe.WriteUnaligned(ref Unsafe.As<char, byte>(ref Unsafe.Add(ref first, i + 4)), DigitPairs[q2 - q3 * 676 + 675]);
        }

        if (i < length)
        {
            int value = random.NextInt();
            for (; i < length; i++)
            {
                chars[i] = (char)('a' + value % 26);
                value /= 26;
            }
        }

        return new string(chars);
    }

    private static string Extra(ref JavaRandom random, int current, int average)
    {
        if (current > average) return Exact(ref random, 0);
        int gap = average - current;
        int delta = (int)JavaRound(0.2 * gap);
        int size = gap - delta + (delta == 0 ? 0 : random.NextInt(2 * delta));
        return Exact(ref random, size);
    }

    private static long Price(ref JavaRandom random) => JavaRound(Math.Pow(10.0, random.NextDouble() * 6) * 100.0);

    /// <summary>Java's <c>Math.round</c>: floor(x + 0.5), never round-half-to-even.</summary>
    private static long JavaRound(double x) => (long)Math.Floor(x + 0.5);

    /// <summary>The bid channel names and URLs (spec 2.7), built once from one seeded random.</summary>
    internal sealed class ChannelTable
    {
        public const int Channels = 10_000;
        private const long Seed = 0x6E65786D61726BL; // ASCII "nexmark"

        public static readonly ChannelTable Instance = new();

        private ChannelTable()
        {
            var random = new JavaRandom(Seed);
            HotUrls = new string[HotChannels.Length];
            for (int i = 0; i < HotUrls.Length; i++) HotUrls[i] = BaseUrl(ref random);
            Names = new string[Channels];
            Urls = new string[Channels];
            for (int c = 0; c < Channels; c++)
            {
                string url = BaseUrl(ref random);
                if (random.NextInt(10) > 0) url += "&channel_id=" + JavaAbs(ReverseBits(c)).ToString(CultureInfo.InvariantCulture);
                Urls[c] = url;
                Names[c] = "channel-" + c.ToString(CultureInfo.InvariantCulture);
            }
        }

        public string[] HotUrls { get; }

        public string[] Names { get; }

        public string[] Urls { get; }

        private static string BaseUrl(ref JavaRandom random) =>
            new StringBuilder("https://www.nexmark.com/")
                .Append(Str(ref random, 5, '_')).Append('/')
                .Append(Str(ref random, 5, '_')).Append('/')
                .Append(Str(ref random, 5, '_')).Append("/item.htm?query=1").ToString();

        /// <summary>Java's Math.abs: int.MinValue stays negative instead of throwing.</summary>
        private static int JavaAbs(int v) => v < 0 ? unchecked(-v) : v;

        private static int ReverseBits(int v)
        {
            uint x = (uint)v, r = 0;
            for (int i = 0; i < 32; i++)
            {
                r = (r << 1) | (x & 1);
                x >>= 1;
            }

            return unchecked((int)r);
        }
    }
}
