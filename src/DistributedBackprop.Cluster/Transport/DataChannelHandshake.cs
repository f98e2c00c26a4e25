using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace DistributedBackprop.Cluster.Transport;

/// <summary>A data-channel peer that did not prove it holds the cluster secret (or whose hello broke the format).</summary>
public sealed class HandshakeRefusedException(string message) : Exception(message);

/// <summary>
/// How a data-channel connection proves both ends hold the cluster secret before any frame flows (HMAC-SHA256
/// challenge-response over both hellos; the secret itself never crosses the wire):
/// <code>
/// client → server  hello:  "DBPD" | version 2 | uint16 n, client node address | client nonce (32)
/// server → client  reply:  "DBPD" | version 2 | server nonce (32) | HMAC(secret, "server" | both nonces | both addresses)
/// client → server  proof:  HMAC(secret, "client" | both nonces | both addresses)
/// </code>
/// The server proves itself first, so a client never sends tensors to a listener that merely took over a port. Each
/// proof covers fresh nonces from both sides, so a recorded handshake cannot be replayed on a new connection, and the
/// role label keeps a server's proof from serving as a client's. A node without a secret sends a proof of zeros, which a
/// node with one refuses; two nodes without a secret connect unauthenticated (the receiver still checks membership).
/// </summary>
public static class DataChannelHandshake
{
    public const uint Magic = 0x44504244; // "DBPD"
    public const byte Version = 2;
    public const int NonceBytes = 32;
    public const int ProofBytes = 32;
    public const int MaxAddressBytes = 2048;

    /// <summary>The client's side: returns once the server has proved itself and the client's proof is sent.</summary>
    public static async Task ClientAsync(Stream stream, string self, string server, byte[]? secret, CancellationToken cancel)
    {
        var clientNonce = RandomNumberGenerator.GetBytes(NonceBytes);
        await stream.WriteAsync(Hello(self, clientNonce), cancel);
        var reply = new byte[5 + NonceBytes + ProofBytes];
        await stream.ReadExactlyAsync(reply, cancel);
        CheckMagic(reply);
        var serverNonce = reply.AsSpan(5, NonceBytes).ToArray();
        var expected = Proof(secret, "server", clientNonce, serverNonce, self, server);
        if (!CryptographicOperations.FixedTimeEquals(expected, reply.AsSpan(5 + NonceBytes, ProofBytes)))
        {
            throw new HandshakeRefusedException($"the data channel at {server} did not prove it holds this cluster's secret");
        }
        await stream.WriteAsync(Proof(secret, "client", clientNonce, serverNonce, self, server), cancel);
        await stream.FlushAsync(cancel);
    }

    /// <summary>The server's side: returns the client's node address once the client has proved it holds the secret.</summary>
    public static async Task<string> ServerAsync(Stream stream, string self, byte[]? secret, CancellationToken cancel)
    {
        var head = new byte[7];
        await stream.ReadExactlyAsync(head, cancel);
        CheckMagic(head);
        var length = BinaryPrimitives.ReadUInt16LittleEndian(head.AsSpan(5));
        if (length is 0 or > MaxAddressBytes)
        {
            throw new HandshakeRefusedException($"the hello's node address length {length} is outside 1..{MaxAddressBytes}");
        }
        var rest = new byte[length + NonceBytes];
        await stream.ReadExactlyAsync(rest, cancel);
        string client;
        try
        {
            client = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(rest, 0, length);
        }
        catch (DecoderFallbackException)
        {
            throw new HandshakeRefusedException("the hello's node address is not UTF-8");
        }
        var clientNonce = rest.AsSpan(length, NonceBytes).ToArray();
        var serverNonce = RandomNumberGenerator.GetBytes(NonceBytes);
        var reply = new byte[5 + NonceBytes + ProofBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(reply, Magic);
        reply[4] = Version;
        serverNonce.CopyTo(reply, 5);
        Proof(secret, "server", clientNonce, serverNonce, client, self).CopyTo(reply, 5 + NonceBytes);
        await stream.WriteAsync(reply, cancel);
        await stream.FlushAsync(cancel);
        var proof = new byte[ProofBytes];
        await stream.ReadExactlyAsync(proof, cancel);
        if (!CryptographicOperations.FixedTimeEquals(Proof(secret, "client", clientNonce, serverNonce, client, self), proof))
        {
            throw new HandshakeRefusedException($"the peer calling itself {client} did not prove it holds this cluster's secret");
        }
        return client;
    }

    /// <summary>The opening bytes of a client (tests use it to play a peer that knows the format but not the secret).</summary>
    public static byte[] Hello(string self, byte[] nonce)
    {
        var address = Encoding.UTF8.GetBytes(self);
        if (address.Length is 0 or > MaxAddressBytes)
        {
            throw new ArgumentException($"A node address of {address.Length} bytes does not fit a hello.", nameof(self));
        }
        var hello = new byte[7 + address.Length + NonceBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(hello, Magic);
        hello[4] = Version;
        BinaryPrimitives.WriteUInt16LittleEndian(hello.AsSpan(5), (ushort)address.Length);
        address.CopyTo(hello, 7);
        nonce.CopyTo(hello, 7 + address.Length);
        return hello;
    }

    private static void CheckMagic(ReadOnlySpan<byte> head)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(head) != Magic || head[4] != Version)
        {
            throw new HandshakeRefusedException($"the connection did not open with a distbp data-channel hello (version {Version})");
        }
    }

    private static byte[] Proof(byte[]? secret, string role, byte[] clientNonce, byte[] serverNonce, string client, string server)
    {
        if (secret is null)
        {
            return new byte[ProofBytes];
        }
        var message = new List<byte>(Encoding.UTF8.GetBytes(role)) { 0 };
        message.AddRange(clientNonce);
        message.AddRange(serverNonce);
        message.AddRange(Encoding.UTF8.GetBytes(client));
        message.Add(0);
        message.AddRange(Encoding.UTF8.GetBytes(server));
        return HMACSHA256.HashData(secret, message.ToArray());
    }
}
