using System;
using System.Collections.Generic;

namespace PipelineDsl.Serialization;

/// <summary>
/// Serializes values of <typeparamref name="T"/> as MessagePack. The generator emits one for each
/// state contract; the runtime uses them for every value that crosses a checkpoint.
/// </summary>
/// <typeparam name="T">The serialized type.</typeparam>
public interface IMessagePackFormatter<T>
{
    /// <summary>Writes <paramref name="value"/> as exactly one MessagePack value.</summary>
    void Serialize(MessagePackWriter writer, T value);

    /// <summary>Reads exactly one MessagePack value.</summary>
    T Deserialize(ref MessagePackReader reader);
}
