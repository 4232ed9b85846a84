using PipelineDsl;

namespace ClicksPerUser;

/// <summary>A raw click as it arrives: one CSV line "user,url,timestampMs,isBot".</summary>
public sealed record ClickEvent(string UserId, string Url, long TimestampMs, bool IsBot);

/// <summary>A parsed, human click.</summary>
public sealed record Click(string UserId, string Url, long TimestampMs);

/// <summary>The running total of one user, emitted for every click.</summary>
public sealed record UserTotals(string UserId, long Clicks, long LastSeenMs);

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
