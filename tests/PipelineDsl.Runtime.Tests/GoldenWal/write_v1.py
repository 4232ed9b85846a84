# Writes GoldenWal/v1 once, independently of PipelineDsl's own code: the write-ahead log format as specified in
# src/Runtime/Sources/WriteAheadLog.cs (frames [length u32 BE][CRC-32C u32 BE][payload]) with HttpReceiverSource's
# entries (MessagePack [key or nil, [line, ...]]). Never rerun over an existing folder: the files are the format's record.
import os, struct, sys

def crc32c(data):
    poly = 0x82F63B78
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF

def mp_str(s):
    b = s.encode("utf-8")
    if len(b) < 32: return bytes([0xA0 | len(b)]) + b
    if len(b) < 256: return bytes([0xD9, len(b)]) + b
    return bytes([0xDA]) + struct.pack(">H", len(b)) + b

def mp_array(n):
    return bytes([0x90 | n]) if n < 16 else bytes([0xDC]) + struct.pack(">H", n)

def entry(key, lines):
    return mp_array(2) + (bytes([0xC0]) if key is None else mp_str(key)) + mp_array(len(lines)) + b"".join(mp_str(l) for l in lines)

def frame(payload):
    return struct.pack(">II", len(payload), crc32c(payload)) + payload

folder = sys.argv[1]
if os.path.exists(folder) and os.listdir(folder): sys.exit(f"{folder} is not empty: golden files are written once")
os.makedirs(folder, exist_ok=True)
requests = [("order-1", ["u1,1", "u2,2"]), (None, ["u3,3"]), ("order-3", ["u1,4", "u4,5", "u2,6"]), ("zürich-ß", ["u5,7"])]
with open(os.path.join(folder, "0000000000000000000.wal"), "wb") as f:
    for key, lines in requests: f.write(frame(entry(key, lines)))
print(f"assert crc32c(b'123456789') == 0xE3069283: {crc32c(b'123456789') == 0xE3069283}")
