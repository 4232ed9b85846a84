using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace PipelineDsl.Generator.Parsing
{
    /// <summary>
    /// A small, strict JSON reader for the lock file (a generator cannot depend on System.Text.Json without
    /// shipping it). Values: Dictionary (object), List (array), string, double, bool, null.
    /// </summary>
    internal static class MiniJson
    {
        public static object? Parse(string text)
        {
            int i = 0;
            var value = Value(text, ref i);
            SkipSpace(text, ref i);
            if (i != text.Length) throw Error(text, i, "unexpected text after the end");
            return value;
        }

        private static object? Value(string s, ref int i)
        {
            SkipSpace(s, ref i);
            if (i >= s.Length) throw Error(s, i, "unexpected end");
            char c = s[i];
            switch (c)
            {
                case '{':
                {
                    i++;
                    var obj = new Dictionary<string, object?>(StringComparer.Ordinal);
                    SkipSpace(s, ref i);
                    if (i < s.Length && s[i] == '}') { i++; return obj; }
                    while (true)
                    {
                        SkipSpace(s, ref i);
                        if (i >= s.Length || s[i] != '"') throw Error(s, i, "expected a property name");
                        string name = String(s, ref i);
                        SkipSpace(s, ref i);
                        if (i >= s.Length || s[i] != ':') throw Error(s, i, "expected ':'");
                        i++;
                        obj[name] = Value(s, ref i);
                        SkipSpace(s, ref i);
                        if (i < s.Length && s[i] == ',') { i++; continue; }
                        if (i < s.Length && s[i] == '}') { i++; return obj; }
                        throw Error(s, i, "expected ',' or '}'");
                    }
                }

                case '[':
                {
                    i++;
                    var list = new List<object?>();
                    SkipSpace(s, ref i);
                    if (i < s.Length && s[i] == ']') { i++; return list; }
                    while (true)
                    {
                        list.Add(Value(s, ref i));
                        SkipSpace(s, ref i);
                        if (i < s.Length && s[i] == ',') { i++; continue; }
                        if (i < s.Length && s[i] == ']') { i++; return list; }
                        throw Error(s, i, "expected ',' or ']'");
                    }
                }

                case '"':
                    return String(s, ref i);
                case 't' when string.CompareOrdinal(s, i, "true", 0, 4) == 0:
                    i += 4;
                    return true;
                case 'f' when string.CompareOrdinal(s, i, "false", 0, 5) == 0:
                    i += 5;
                    return false;
                case 'n' when string.CompareOrdinal(s, i, "null", 0, 4) == 0:
                    i += 4;
                    return null;
                default:
                {
                    int start = i;
                    while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
                    if (start == i || !double.TryParse(s.Substring(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out double d))
                        throw Error(s, start, "unexpected character '" + c + "'");
                    return d;
                }
            }
        }

        private static string String(string s, ref int i)
        {
            i++;
            var sb = new StringBuilder();
            while (i < s.Length)
            {
                char c = s[i++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                if (i >= s.Length) break;
                char e = s[i++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u' when i + 4 <= s.Length:
                        sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        i += 4;
                        break;
                    default: throw Error(s, i - 1, "invalid escape");
                }
            }

            throw Error(s, i, "unterminated string");
        }

        private static void SkipSpace(string s, ref int i)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        }

        private static FormatException Error(string s, int at, string what)
        {
            int line = 1, column = 1;
            for (int k = 0; k < at && k < s.Length; k++)
            {
                if (s[k] == '\n') { line++; column = 1; } else column++;
            }

            return new FormatException($"line {line}, column {column}: {what}");
        }
    }
}
