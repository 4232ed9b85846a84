using PipelineDsl;

namespace ClicksPerUser;

/// <summary>A raw click as it arrives: one CSV line "user,url,timestampMs,isBot".</summary>
public sealed record ClickEvent(string UserId, string Url, long TimestampMs, bool IsBot)
{
    /// <summary>Parses "user,url,timestampMs,isBot" (isBot is 0 or 1); throws FormatException on anything else.</summary>
    public static ClickEvent Parse(string line)
    {
        var f = line.Split(',');
        if (f.Length != 4) throw new FormatException($"expected 4 comma-separated fields (user,url,timestampMs,isBot) but found {f.Length}");
        if (f[0].Length == 0) throw new FormatException("the user is empty");
        if (!long.TryParse(f[2], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long t))
            throw new FormatException($"the timestamp '{f[2]}' is not a whole number of milliseconds");
        bool bot = f[3] switch { "0" => false, "1" => true, _ => throw new FormatException($"isBot must be 0 or 1, not '{f[3]}'") };
        return new ClickEvent(f[0], f[1], t, bot);
    }
}

/// <summary>A parsed, human click.</summary>
public sealed record Click(string UserId, string Url, long TimestampMs);

/// <summary>The running total of one user, emitted for every click.</summary>
public sealed record UserTotals(string UserId, long Clicks, long LastSeenMs)
{
    /// <summary>"user,clicks,lastSeenMs".</summary>
    public string ToCsv() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{UserId},{Clicks},{LastSeenMs}");
}

/// <summary>What the pipeline remembers per user across batches (and checkpoints).</summary>
[StateContract]
public partial record struct UserState(
    [property: Field(0)] long Clicks,
    [property: Field(1)] long LastSeenMs);

[Pipeline("clicks-per-user")]
public static partial class ClicksPerUserPipeline
{
    [Source("clicks")]
    public static partial Source<ClickEvent> Clicks();

    [Filter("humans", From = "clicks")]
    public static bool IsHuman(ClickEvent e) => !e.IsBot;

    [Map("parse", From = "humans")]
    public static Click Parse(ClickEvent e) => new(e.UserId, e.Url, e.TimestampMs);

    [UpdateState("per-user", From = "parse", Key = nameof(Click.UserId), IdleTimeoutBatches = 100)]
    public static UserTotals PerUser(string userId, Click click, KeyedState<UserState> state)
    {
        var next = new UserState(state.Value.Clicks + 1, click.TimestampMs);
        state.Update(next);
        return new UserTotals(userId, next.Clicks, next.LastSeenMs);
    }

    [Sink("totals", From = "per-user")]
    public static partial Sink<UserTotals> Totals();
}
