// PropsCheck is java.util.Properties as the properties package's tests
// compare it: each stdin line is "store <hexkey> <hexvalue>" (UTF-8 in hex)
// and is answered with the hex of the line Properties.store(OutputStream)
// writes for that one entry, or "load <hextext>", answered with one
// "<hexkey> <hexvalue>" line per entry Properties.load(InputStream) reads
// from the text, sorted by key, then "end".
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;

public class PropsCheck {
    static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) s.append(String.format("%02x", x & 0xff));
        return s.toString();
    }
    static byte[] unhex(String s) {
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++) b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return b;
    }
    static String str(String h) { return new String(unhex(h), StandardCharsets.UTF_8); }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        PrintStream out = new PrintStream(new BufferedOutputStream(System.out), false, "US-ASCII");
        for (String line; (line = in.readLine()) != null; ) {
            String[] f = line.split(" ", -1);
            if (f[0].equals("store")) {
                Properties p = new Properties();
                p.setProperty(str(f[1]), str(f[2]));
                ByteArrayOutputStream b = new ByteArrayOutputStream();
                p.store(b, null);
                String text = b.toString(StandardCharsets.ISO_8859_1);
                String entry = text.substring(text.indexOf('\n') + 1); // after the date comment
                out.println(hex(entry.getBytes(StandardCharsets.ISO_8859_1)));
            } else {
                Properties p = new Properties();
                p.load(new ByteArrayInputStream(unhex(f[1])));
                TreeMap<String, String> m = new TreeMap<>();
                for (String k : p.stringPropertyNames()) m.put(k, p.getProperty(k));
                for (Map.Entry<String, String> e : m.entrySet())
                    out.println(hex(e.getKey().getBytes(StandardCharsets.UTF_8)) + " " + hex(e.getValue().getBytes(StandardCharsets.UTF_8)));
                out.println("end");
            }
            out.flush();
        }
    }
}
