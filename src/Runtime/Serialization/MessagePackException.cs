using System;

namespace PipelineDsl.Serialization;

/// <summary>
/// Thrown when bytes are not the MessagePack a reader expected: truncated, malformed, of another
/// type, or larger than the input can justify. The message names the byte offset.
/// </summary>
public sealed class MessagePackException : PipelineDslException
{
    /// <inheritdoc />
    public override bool IsTransient => false;

    /// <summary>Creates the exception.</summary>
    public MessagePackException(string message) : base(message, null) { }

    /// <summary>Creates the exception with an inner cause.</summary>
    public MessagePackException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>The kind of the next MessagePack value.</summary>
public enum MessagePackType
{
    /// <summary>nil.</summary>
    Nil,
    /// <summary>true or false.</summary>
    Boolean,
    /// <summary>A signed or unsigned integer of any width.</summary>
    Integer,
    /// <summary>float 32 or float 64.</summary>
    Float,
    /// <summary>A UTF-8 string.</summary>
    String,
    /// <summary>Raw bytes.</summary>
    Binary,
    /// <summary>An array.</summary>
    Array,
    /// <summary>A map.</summary>
    Map,
    /// <summary>An extension value (including timestamps, type -1).</summary>
    Extension,
}
