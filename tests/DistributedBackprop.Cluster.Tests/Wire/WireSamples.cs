using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using Akka.Actor;
using Akka.Hosting;
using Akka.Remote.Hosting;
using DistributedBackprop.Cluster.Contracts;
using DistributedBackprop.Cluster.Transport;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace DistributedBackprop.Cluster.Tests.Wire;

/// <summary>Random wire messages (built from each record's constructor by reflection) and bit-exact comparison.</summary>
internal static class WireSamples
{
    /// <summary>Every concrete IWireMessage type in the Cluster assembly.</summary>
    public static IReadOnlyList<Type> ConcreteWireTypes { get; } = typeof(IWireMessage).Assembly.GetTypes()
        .Where(t => typeof(IWireMessage).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
        .OrderBy(t => t.FullName, StringComparer.Ordinal)
        .ToArray();

    public static TheoryData<string> WireTypeNames()
    {
        var data = new TheoryData<string>();
        foreach (var type in ConcreteWireTypes)
        {
            data.Add(type.Name);
        }
        return data;
    }

    public static Type TypeNamed(string name) => ConcreteWireTypes.Single(t => t.Name == name);

    public static IWireMessage Random(Type type, Random rng)
    {
        var ctor = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        var args = ctor.GetParameters().Select(p => Value(p.ParameterType, rng)).ToArray();
        return (IWireMessage)ctor.Invoke(args);
    }

    private static object Value(Type type, Random rng)
    {
        if (type == typeof(string)) return RandomString(rng);
        if (type == typeof(long)) return rng.Next(4) == 0 ? (rng.Next(2) == 0 ? long.MinValue : long.MaxValue) : rng.NextInt64(long.MinValue, long.MaxValue);
        if (type == typeof(int)) return rng.Next(4) == 0 ? (rng.Next(2) == 0 ? int.MinValue : int.MaxValue) : rng.Next(int.MinValue, int.MaxValue);
        if (type == typeof(bool)) return rng.Next(2) == 0;
        // Any value, named or not: a peer may send a number no member of the enum has.
        if (type.IsEnum) return Enum.ToObject(type, rng.Next(int.MinValue, int.MaxValue));
        if (type == typeof(double)) return RandomDouble(rng);
        if (type == typeof(float)) return RandomFloat(rng);
        if (type == typeof(string[])) return Enumerable.Range(0, rng.Next(0, 9)).Select(_ => RandomString(rng)).ToArray();
        if (type == typeof(int[])) return Enumerable.Range(0, Length(rng)).Select(_ => (int)Value(typeof(int), rng)).ToArray();
        if (type == typeof(long[])) return Enumerable.Range(0, Length(rng)).Select(_ => (long)Value(typeof(long), rng)).ToArray();
        // A message inside a message (a range plan inside a range's weights).
        if (typeof(IWireMessage).IsAssignableFrom(type)) return Random(type, rng);
        if (type == typeof(float[])) return Enumerable.Range(0, Length(rng)).Select(_ => RandomFloat(rng)).ToArray();
        if (type == typeof(double[])) return Enumerable.Range(0, Length(rng)).Select(_ => RandomDouble(rng)).ToArray();
        if (type == typeof(byte[]))
        {
            var bytes = new byte[Length(rng)];
            rng.NextBytes(bytes);
            return bytes;
        }
        throw new NotSupportedException($"No generator for {type}; add one so the property tests cover the new field.");
    }

    private static int Length(Random rng) => rng.Next(10) switch
    {
        0 => 0,
        1 => rng.Next(1000, 5000),
        _ => rng.Next(1, 64),
    };

    public static float RandomFloat(Random rng) => rng.Next(12) switch
    {
        0 => float.NaN,
        1 => BitConverter.Int32BitsToSingle(0x7F800001 | rng.Next(0x007FFFFF) | (rng.Next(2) << 31)), // NaN payloads, both signs
        2 => float.PositiveInfinity,
        3 => float.NegativeInfinity,
        4 => -0f,
        5 => float.Epsilon * rng.Next(1, 1000), // subnormals
        6 => rng.Next(2) == 0 ? float.MaxValue : float.MinValue,
        _ => BitConverter.Int32BitsToSingle(rng.Next() ^ (rng.Next(2) << 31)),
    };

    public static double RandomDouble(Random rng) => rng.Next(10) switch
    {
        0 => double.NaN,
        1 => BitConverter.Int64BitsToDouble(0x7FF0000000000001 | rng.NextInt64(0x000FFFFFFFFFFFFF)),
        2 => double.PositiveInfinity,
        3 => double.NegativeInfinity,
        4 => -0d,
        5 => double.Epsilon * rng.Next(1, 1000),
        _ => BitConverter.Int64BitsToDouble(rng.NextInt64()),
    };

    private static readonly string[] Pieces = ["a", "Z", "0", " ", "é", "ß", "中", "😀", "\n", "\0", "worker-", "run/"];

    private static string RandomString(Random rng)
    {
        var pieces = rng.Next(8) switch
        {
            0 => 0,
            1 => rng.Next(5000, 20000), // long strings
            _ => rng.Next(1, 24),
        };
        var sb = new StringBuilder();
        for (var i = 0; i < pieces; i++)
        {
            sb.Append(Pieces[rng.Next(Pieces.Length)]);
        }
        return sb.ToString();
    }

    /// <summary>Asserts two messages are equal field by field, floats and doubles bit for bit.</summary>
    public static void AssertBitEqual(object expected, object actual)
    {
        Assert.Equal(expected.GetType(), actual.GetType());
        foreach (var property in expected.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.GetIndexParameters().Length > 0 || property.Name == "EqualityContract") continue;
            var e = property.GetValue(expected);
            var a = property.GetValue(actual);
            switch (e)
            {
                case float[] ef:
                    Assert.True(MemoryMarshal.AsBytes(ef.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(((float[])a!).AsSpan())), property.Name);
                    break;
                case double[] ed:
                    Assert.True(MemoryMarshal.AsBytes(ed.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(((double[])a!).AsSpan())), property.Name);
                    break;
                case byte[] eb:
                    Assert.True(eb.AsSpan().SequenceEqual((byte[])a!), property.Name);
                    break;
                case double d:
                    Assert.Equal(BitConverter.DoubleToInt64Bits(d), BitConverter.DoubleToInt64Bits((double)a!));
                    break;
                case IWireMessage nested:
                    AssertBitEqual(nested, a!);
                    break;
                case float f:
                    Assert.Equal(BitConverter.SingleToInt32Bits(f), BitConverter.SingleToInt32Bits((float)a!));
                    break;
                default:
                    Assert.Equal(e, a);
                    break;
            }
        }
    }

    /// <summary>An ActorSystem built by Akka.Hosting exactly as the node builds it (serializer, optionally remoting).</summary>
    public static ActorSystem HostedSystem(string name, bool remoting)
    {
        var services = new ServiceCollection();
        services.AddAkka(name, builder =>
        {
            if (remoting)
            {
                builder.WithRemoting("127.0.0.1", 0).WithWireRemotingSettings();
            }
            builder.AddHocon("akka.loglevel = INFO", HoconAddMode.Prepend);
            builder.WithWireSerializer();
        });
        // The provider is not disposed: the test kit terminates the system it owns.
        return services.BuildServiceProvider().GetRequiredService<ActorSystem>();
    }
}
