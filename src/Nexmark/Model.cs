using System;

namespace PipelineDsl.Nexmark;

/// <summary>The kind of a Nexmark event; the numbers are the <c>event_type</c> column of the Nexmark SQL.</summary>
public enum EventType
{
    /// <summary>A new person (seller or bidder).</summary>
    Person = 0,
    /// <summary>A new auction.</summary>
    Auction = 1,
    /// <summary>A bid on an auction.</summary>
    Bid = 2,
}

/// <summary>A person registering with the auction site.</summary>
[StateContract]
public sealed partial class Person
{
    /// <summary>Primary key, 1000 or more.</summary>
    [Field(0)] public long Id { get; init; }

    /// <summary>"First Last".</summary>
    [Field(1)] public string Name { get; init; } = "";

    /// <summary>An e-mail address.</summary>
    [Field(2)] public string EmailAddress { get; init; } = "";

    /// <summary>Four 4-digit groups separated by spaces.</summary>
    [Field(3)] public string CreditCard { get; init; } = "";

    /// <summary>One of 10 US cities.</summary>
    [Field(4)] public string City { get; init; } = "";

    /// <summary>One of 6 two-letter states.</summary>
    [Field(5)] public string State { get; init; } = "";

    /// <summary>Registration time (event time), Unix milliseconds.</summary>
    [Field(6)] public long DateTime { get; init; }

    /// <summary>Padding that brings the event to its average size.</summary>
    [Field(7)] public string Extra { get; init; } = "";
}

/// <summary>An auction opened by a seller.</summary>
[StateContract]
public sealed partial class Auction
{
    /// <summary>Primary key, 1000 or more.</summary>
    [Field(0)] public long Id { get; init; }

    /// <summary>Random words.</summary>
    [Field(1)] public string ItemName { get; init; } = "";

    /// <summary>Random words.</summary>
    [Field(2)] public string Description { get; init; } = "";

    /// <summary>Opening price in cents.</summary>
    [Field(3)] public long InitialBid { get; init; }

    /// <summary>Reserve price in cents.</summary>
    [Field(4)] public long Reserve { get; init; }

    /// <summary>When the auction opens (event time), Unix milliseconds.</summary>
    [Field(5)] public long DateTime { get; init; }

    /// <summary>When the auction closes; bids after it do not count.</summary>
    [Field(6)] public long Expires { get; init; }

    /// <summary>The seller's <see cref="Person.Id"/>.</summary>
    [Field(7)] public long Seller { get; init; }

    /// <summary>10 to 14.</summary>
    [Field(8)] public long Category { get; init; }

    /// <summary>Padding.</summary>
    [Field(9)] public string Extra { get; init; } = "";
}

/// <summary>A bid on an auction.</summary>
[StateContract]
public sealed partial class Bid
{
    /// <summary>The <see cref="Auction.Id"/> (may name an auction up to 10 ids past the newest one).</summary>
    [Field(0)] public long Auction { get; init; }

    /// <summary>The bidder's <see cref="Person.Id"/>.</summary>
    [Field(1)] public long Bidder { get; init; }

    /// <summary>The bid in cents.</summary>
    [Field(2)] public long Price { get; init; }

    /// <summary>Google, Facebook, Baidu, Apple or channel-&lt;0..9999&gt;.</summary>
    [Field(3)] public string Channel { get; init; } = "";

    /// <summary>The bid's URL.</summary>
    [Field(4)] public string Url { get; init; } = "";

    /// <summary>Event time, Unix milliseconds.</summary>
    [Field(5)] public long DateTime { get; init; }

    /// <summary>Padding.</summary>
    [Field(6)] public string Extra { get; init; } = "";
}

/// <summary>One Nexmark event: exactly one of <see cref="Person"/>, <see cref="Auction"/> and <see cref="Bid"/> is set.</summary>
public sealed class Event
{
    private Event(EventType type, Person? person, Auction? auction, Bid? bid, long dateTime)
    {
        Type = type;
        Person = person;
        Auction = auction;
        Bid = bid;
        DateTime = dateTime;
    }

    /// <summary>Wraps a person.</summary>
    public static Event Of(Person person) => new(EventType.Person, person ?? throw new ArgumentNullException(nameof(person)), null, null, person.DateTime);

    /// <summary>Wraps an auction.</summary>
    public static Event Of(Auction auction) => new(EventType.Auction, null, auction ?? throw new ArgumentNullException(nameof(auction)), null, auction.DateTime);

    /// <summary>Wraps a bid.</summary>
    public static Event Of(Bid bid) => new(EventType.Bid, null, null, bid ?? throw new ArgumentNullException(nameof(bid)), bid.DateTime);

    /// <summary>Which payload is set.</summary>
    public EventType Type { get; }

    /// <summary>The person, when <see cref="Type"/> is <see cref="EventType.Person"/>.</summary>
    public Person? Person { get; }

    /// <summary>The auction, when <see cref="Type"/> is <see cref="EventType.Auction"/>.</summary>
    public Auction? Auction { get; }

    /// <summary>The bid, when <see cref="Type"/> is <see cref="EventType.Bid"/>.</summary>
    public Bid? Bid { get; }

    /// <summary>The payload's event time (Unix milliseconds), as the top-level <c>dateTime</c> of the Nexmark SQL views.</summary>
    public long DateTime { get; }

    /// <inheritdoc />
    public override string ToString() => Type switch
    {
        EventType.Person => $"Person {Person!.Id} '{Person.Name}' at {DateTime}",
        EventType.Auction => $"Auction {Auction!.Id} by {Auction.Seller} at {DateTime}",
        _ => $"Bid {Bid!.Price} on {Bid.Auction} by {Bid.Bidder} at {DateTime}",
    };
}
