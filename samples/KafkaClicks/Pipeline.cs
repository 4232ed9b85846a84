using System.Globalization;
using PipelineDsl;

namespace KafkaClicks;

/// <summary>A click as it arrives on the input topic: the value "user,url,timestampMs,isBot".</summary>
public sealed record ClickEvent(string UserId, string Url, long TimestampMs, bool IsBot)
{
    /// <summary>Parses "user,url,timestampMs,isBot" (isBot 0 or 1); throws FormatException on anything else.</summary>
    public static ClickEvent Parse(string line)
    {
        var f = line.Split(',');
        if (f.Length != 4) throw new FormatException($"expected 4 comma-separated fields (user,url,timestampMs,isBot) but found {f.Length}");
        if (f[0].Length == 0) throw new FormatException("the user is empty");
        if (!long.TryParse(f[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out long t))
            throw new FormatException($"the timestamp '{f[2]}' is not a whole number of milliseconds");
        bool bot = f[3] switch { "0" => false, "1" => true, _ => throw new FormatException($"isBot must be 0 or 1, not '{f[3]}'") };
        return new ClickEvent(f[0], f[1], t, bot);
    }
}

/// <summary>The running total of one user, written to the output topic (key: the user) for every human click.</summary>
public sealed record UserTotals(string UserId, long Clicks, long LastSeenMs)
{
    /// <summary>"user,clicks,lastSeenMs".</summary>
    public string ToCsv() => string.Create(CultureInfo.InvariantCulture, $"{UserId},{Clicks},{LastSeenMs}");
}

/// <summary>Per-user state, checkpointed with the generated MessagePack formatter.</summary>
[StateContract]
public partial record struct UserState(
    [property: Field(0)] long Clicks,
    [property: Field(1)] long LastSeenMs);

/// <summary>Kafka topic "clicks" → humans only → running clicks per user → Kafka topic "user-totals", exactly once.</summary>
[Pipeline("kafka-clicks-per-user")]
public static partial class KafkaClicksPipeline
{
    [Source("clicks")]
    public static partial Source<ClickEvent> Clicks();

    [Filter("humans", From = "clicks")]
    public static bool IsHuman(ClickEvent e) => !e.IsBot;

    [UpdateState("per-user", From = "humans", Key = nameof(ClickEvent.UserId))]
    public static UserTotals PerUser(string userId, ClickEvent click, KeyedState<UserState> state)
    {
        var next = new UserState(state.Value.Clicks + 1, click.TimestampMs);
        state.Update(next);
        return new UserTotals(userId, next.Clicks, next.LastSeenMs);
    }

    [Sink("totals", From = "per-user")]
    public static partial Sink<UserTotals> Totals();
}
