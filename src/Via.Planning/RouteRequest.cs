using System.Net;

namespace Via.Planning;

/// <summary>Where a program's traffic should go, as the user asked for it (--dev, --gateway, --src, --table).</summary>
public sealed record RouteRequest(string Device, IPAddress? Gateway = null, IPAddress? Source = null, uint? Table = null);

/// <summary>The request cannot be planned on this host; the message says what and what to do. Nothing was changed.</summary>
public sealed class PlanException(string message) : Exception(message);
