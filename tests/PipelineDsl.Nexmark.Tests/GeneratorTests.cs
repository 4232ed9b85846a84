using System.Text.RegularExpressions;

namespace PipelineDsl.Nexmark.Tests;

/// <summary>The generator against docs/nexmark/SPEC.md section 5: sample values and structural rules.</summary>
public class GeneratorTests
{
    private const long BaseTime = 1436918400000L;
    private static readonly NexmarkGenerator Canonical = new(new NexmarkConfiguration { NumEvents = 1_000_000 });

    [Fact]
    public void Event0IsTheSpecsPerson()
    {
        var p = Canonical.Generate(0).Person!;
        Assert.Equal(1000, p.Id);
        Assert.Equal("Peter Jones", p.Name);
        Assert.Equal("nhd@xcat.com", p.EmailAddress);
        Assert.Equal("7241 7320 9143 4888", p.CreditCard);
        Assert.Equal("Portland", p.City);
        Assert.Equal("WY", p.State);
        Assert.Equal(BaseTime, p.DateTime);
        Assert.Equal(156, p.Extra.Length);
    }

    [Fact]
    public void Events1To3AreTheSpecsAuctions()
    {
        var a1 = Canonical.Generate(1).Auction!;
        Assert.Equal((1000L, "wkx mgee", 28873L, 29448L, 11L, 1000L, 13L, 346), (a1.Id, a1.ItemName, a1.InitialBid, a1.Reserve, a1.Expires - a1.DateTime, a1.Seller, a1.Category, a1.Extra.Length));
        var a2 = Canonical.Generate(2).Auction!;
        Assert.Equal((1001L, "z ck w", 25626290L, 28805847L, 202L, 1000L, 12L), (a2.Id, a2.ItemName, a2.InitialBid, a2.Reserve, a2.Expires - a2.DateTime, a2.Seller, a2.Category));
        var a3 = Canonical.Generate(3).Auction!;
        Assert.Equal((1002L, 267L, 422398L, 1L, 10L), (a3.Id, a3.InitialBid, a3.Reserve, a3.Expires - a3.DateTime, a3.Category));
    }

    [Fact]
    public void Event4IsTheSpecsBid()
    {
        var b = Canonical.Generate(4).Bid!;
        Assert.Equal((1000L, 1001L, 32530001L, "Google", "https://www.nexmark.com/izv/xmxz/pnwo/item.htm?query=1", 57), (b.Auction, b.Bidder, b.Price, b.Channel, b.Url, b.Extra.Length));
        var flink = new NexmarkGenerator(new NexmarkConfiguration { NumEvents = 10, FlinkDoubleBidderOffset = true }).Generate(4).Bid!;
        Assert.Equal(2001, flink.Bidder);
    }

    [Fact]
    public void Events49_50_AndTheLastMatchTheSpec()
    {
        var b49 = Canonical.Generate(49).Bid!;
        Assert.Equal(BaseTime + 4, b49.DateTime);
        Assert.Equal("channel-4763", b49.Channel);
        Assert.EndsWith("&channel_id=649592832", b49.Url);
        var p50 = Canonical.Generate(50).Person!;
        Assert.Equal((1001L, "Sarah Smith", "f  y@yumv.com", "Los Angeles", "ID", BaseTime + 5), (p50.Id, p50.Name, p50.EmailAddress, p50.City, p50.State, p50.DateTime));
        var last = Canonical.Generate(999_999);
        Assert.Equal(EventType.Bid, last.Type);
        Assert.Equal(BaseTime + 99_999, last.DateTime);
    }

    [Fact]
    public void ChannelTableMatchesTheSpec()
    {
        var t = NexmarkGenerator.ChannelTable.Instance;
        Assert.Equal(new[] { "izv/xmxz/pnwo", "uul_/rwfd/rtek", "pnnl/_ym/escu", "j_r/fiv/gqye" },
            t.HotUrls.Select(u => u["https://www.nexmark.com/".Length..u.IndexOf("/item.htm", StringComparison.Ordinal)]));
        Assert.EndsWith("&channel_id=0", t.Urls[0]);
        Assert.EndsWith("&channel_id=-2147483648", t.Urls[1]);
        Assert.EndsWith("&channel_id=1073741824", t.Urls[2]);
        Assert.Equal("channel-9999", t.Names[9999]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(49)]
    [InlineData(50)]
    [InlineData(1234)]
    [InlineData(100_000)]
    public void KindCountsFollowTheBlocksOf50(int n)
    {
        var events = Enumerable.Range(0, n).Select(k => Canonical.Generate(k)).ToList();
        int q = n / 50, r = n % 50;
        Assert.Equal(q + (r > 0 ? 1 : 0), events.Count(e => e.Type == EventType.Person));
        Assert.Equal(3 * q + Math.Clamp(r - 1, 0, 3), events.Count(e => e.Type == EventType.Auction));
        Assert.Equal(n - events.Count(e => e.Type != EventType.Bid), events.Count(e => e.Type == EventType.Bid));
    }

    [Fact]
    public void IdsAreDenseAndForeignKeysAndValuesInRange()
    {
        long nextPerson = 1000, nextAuction = 1000, lastTime = long.MinValue;
        var card = new Regex(@"^\d{4} \d{4} \d{4} \d{4}$");
        for (long k = 0; k < 200_000; k++)
        {
            var e = Canonical.Generate(k);
            long id = Canonical.EventIdAt(k);
            Assert.True(e.DateTime >= lastTime, $"event {k} goes back in time");
            lastTime = e.DateTime;
            Assert.Equal(Canonical.TimestampOf(k), e.DateTime);
            Assert.Equal(Canonical.WatermarkAt(k), e.DateTime);
            switch (e.Type)
            {
                case EventType.Person:
                    Assert.Equal(nextPerson++, e.Person!.Id);
                    Assert.Matches(card, e.Person.CreditCard);
                    break;
                case EventType.Auction:
                    var a = e.Auction!;
                    Assert.Equal(nextAuction++, a.Id);
                    Assert.Equal(1000 + 3 * (id / 50) + (id % 50 - 1), a.Id);
                    Assert.InRange(a.Category, 10, 14);
                    Assert.InRange(a.InitialBid, 100, 100_000_000);
                    Assert.True(a.Reserve >= a.InitialBid + 100);
                    Assert.InRange(a.Expires - a.DateTime, 1, 2 * 167);
                    Assert.True(a.Seller - 1000 <= Canonical.LastPerson(id) + 10);
                    break;
                default:
                    var b = e.Bid!;
                    Assert.True(b.Auction - 1000 <= Canonical.LastAuction(id) + 10);
                    Assert.True(b.Bidder - 1000 <= Canonical.LastPerson(id) + 10);
                    Assert.InRange(b.Price, 100, 100_000_000);
                    Assert.InRange(b.Extra.Length, 54, 81);
                    break;
            }
        }
    }

    [Fact]
    public void HotValuesAreMultiplesOf100()
    {
        var bids = Enumerable.Range(0, 50_000).Select(k => Canonical.Generate(k)).Where(e => e.Bid is not null).Select(e => e.Bid!).ToList();
        // Half the bids go to the hot auction and 3/4 to the hot bidder: both are far more frequent than any cold value.
        var topAuction = bids.GroupBy(b => b.Auction).MaxBy(g => g.Count())!;
        Assert.Equal(0, (topAuction.Key - 1000) % 100);
        Assert.True(bids.Count(b => (b.Bidder - 1000) % 100 == 1) > bids.Count * 0.7);
    }

    [Fact]
    public void OutOfOrderBlocksArePermutationsAboveTheirWatermark()
    {
        const int g = 10; // 953 mod 10 = 3: a real permutation (953 mod 7 = 1 would be the identity)
        var inOrder = new NexmarkGenerator(new NexmarkConfiguration { NumEvents = 10_000 });
        var shuffled = new NexmarkGenerator(new NexmarkConfiguration { NumEvents = 10_000, OutOfOrderGroupSize = g });
        long lastWatermark = long.MinValue;
        bool anyMoved = false;
        for (int block = 0; block < 1000; block++)
        {
            var expected = Enumerable.Range(block * g, g).Select(k => inOrder.EventIdAt(k)).OrderBy(x => x).ToList();
            var actual = Enumerable.Range(block * g, g).Select(k => shuffled.EventIdAt(k)).ToList();
            anyMoved |= !actual.SequenceEqual(expected);
            Assert.Equal(expected, actual.OrderBy(x => x));
            for (int k = block * g; k < (block + 1) * g; k++)
            {
                long watermark = shuffled.WatermarkAt(k);
                Assert.True(watermark >= lastWatermark);
                lastWatermark = watermark;
                Assert.True(shuffled.Generate(k).DateTime >= watermark);
            }
        }

        Assert.True(anyMoved, "a group size of 10 must permute events");
    }

    [Fact]
    public void RandomAccessEqualsSequentialAndSplitsAreDisjoint()
    {
        var config = new NexmarkConfiguration { NumEvents = 10_001, NumEventGenerators = 3 };
        var generators = Enumerable.Range(0, 3).Select(i => new NexmarkGenerator(config, i)).ToArray();
        Assert.Equal(10_001, generators.Sum(g => g.Count));
        Assert.Equal(3335, generators[2].Count);
        var ids = generators.SelectMany(g => Enumerable.Range(0, (int)g.Count).Select(k => g.EventIdAt(k))).ToList();
        Assert.Equal(ids.Count, ids.Distinct().Count());
        var sequential = Enumerable.Range(0, 500).Select(k => generators[1].Generate(k).ToString()).ToList();
        foreach (int k in new[] { 499, 0, 250, 17 }) Assert.Equal(sequential[k], generators[1].Generate(k).ToString());
        // Every generator runs the same timeline: event k has the same time in each.
        Assert.Equal(generators[0].Generate(100).DateTime, generators[2].Generate(100).DateTime);
    }

    [Fact]
    public void BadOptionsAreNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => new NexmarkSource(new NexmarkConfiguration { OutOfOrderGroupSize = 953 * 2 }));
        Assert.Contains("OutOfOrderGroupSize", e.Message);
        e = Assert.Throws<ArgumentException>(() => new NexmarkSource(new NexmarkConfiguration { FirstEventRate = 0 }));
        Assert.Contains("FirstEventRate", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Canonical.Generate(1_000_000));
    }

    [Fact]
    public void Exact_padding_is_the_specs_digit_by_digit_recipe_including_negative_draws()
    {
        // SPEC 2.5 exact(len): v = NextInt() for every 6 characters; each character is 'a' + v % 26, then v /= 26,
        // with truncating remainders (negative v gives characters below 'a'). Written here the slow, literal way.
        static string Literal(ref JavaRandom random, int length)
        {
            var chars = new char[length];
            int v = 0, left = 0;
            for (int i = 0; i < length; i++)
            {
                if (left == 0)
                {
                    v = random.NextInt();
                    left = 6;
                }

                chars[i] = (char)('a' + v % 26);
                v /= 26;
                left--;
            }

            return new string(chars);
        }

        bool sawNegative = false;
        for (long seed = 0; seed < 2000; seed++)
        {
            int length = (int)(seed % 97);
            var fast = new JavaRandom(seed);
            var literal = new JavaRandom(seed);
            string expected = Literal(ref literal, length);
            Assert.Equal(expected, NexmarkGenerator.Exact(ref fast, length));
            Assert.Equal(literal.NextInt(), fast.NextInt()); // the same number of draws
            sawNegative |= expected.Any(c => c < 'a');
        }

        Assert.True(sawNegative, "no negative draw was exercised");
    }
}
