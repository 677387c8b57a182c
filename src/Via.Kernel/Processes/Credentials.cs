using System.Runtime.InteropServices;
using Via.Kernel.Interop;

namespace Via.Kernel.Processes;

/// <summary>Who a launched program runs as: uid, gid, supplementary groups, and the account's name and home.</summary>
public sealed record Credentials(uint Uid, uint Gid, uint[] Groups, string Name, string Home)
{
    public bool IsRoot => Uid == 0;

    /// <summary>Looks a user up by name or number (getpwnam/getpwuid, so NSS sources count); null if unknown.</summary>
    public static unsafe Credentials? Lookup(string user)
    {
        Libc.Passwd* pw = uint.TryParse(user, out uint uid) ? Libc.getpwuid(uid) : Libc.getpwnam(user);
        if (pw == null) return null;
        string name = Marshal.PtrToStringUTF8((nint)pw->pw_name) ?? user;
        string home = Marshal.PtrToStringUTF8((nint)pw->pw_dir) ?? "/";
        return new Credentials(pw->pw_uid, pw->pw_gid, GroupsOf(name, pw->pw_gid), name, home);
    }

    /// <summary>Looks a group up by name or number (getgrnam/getgrgid, so NSS sources count): its gid and name; null if unknown.</summary>
    public static unsafe (uint Gid, string Name)? LookupGroup(string group)
    {
        Libc.Group* gr = uint.TryParse(group, out uint gid) ? Libc.getgrgid(gid) : Libc.getgrnam(group);
        if (gr == null) return null;
        return (gr->gr_gid, Marshal.PtrToStringUTF8((nint)gr->gr_name) ?? group);
    }

    /// <summary>
    /// The account for a uid and gid as sudo passes them (SUDO_UID, SUDO_GID). The primary group is
    /// the one given, as sudo would have it; supplementary groups come from the account.
    /// </summary>
    public static Credentials ForIds(uint uid, uint gid)
    {
        var known = Lookup(uid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return known is null
            ? new Credentials(uid, gid, [gid], uid.ToString(System.Globalization.CultureInfo.InvariantCulture), "/")
            : known with { Gid = gid, Groups = known.Groups.Contains(gid) ? known.Groups : [gid, .. known.Groups] };
    }

    private static unsafe uint[] GroupsOf(string name, uint gid)
    {
        int count = 64;
        while (true)
        {
            var groups = new uint[count];
            int n = count;
            fixed (uint* p = groups)
            {
                if (Libc.getgrouplist(name, gid, p, &n) >= 0) return groups[..n];
            }
            if (n <= count) return [gid];
            count = n;
        }
    }

    public string Describe() => $"{Name} (uid {Uid}, gid {Gid}, groups {string.Join(',', Groups)})";
}
