#!/usr/bin/perl
# A stack for tests, on port 8080. A plain HTTP request is answered with its
# method, path and body ("POST /x\n<body>"), whether the body came with a
# Content-Length or chunked, or, for /_headers, with the request's head as it
# arrived; a WebSocket upgrade (RFC 6455) gets every
# message echoed back to its sender. Perl's core modules only, so it runs on
# the test agent base image.
use strict;
use warnings;
use IO::Socket::INET;
use Digest::SHA qw(sha1);
use MIME::Base64 qw(encode_base64);

$SIG{CHLD} = 'IGNORE';
my $server = IO::Socket::INET->new(LocalPort => 8080, Listen => 64, ReuseAddr => 1)
  or die "cannot listen on 8080: $!";
$| = 1;
print "listening on 8080\n";
while (1) {
  my $client = $server->accept or next;
  if (fork() == 0) {
    close $server;
    serve($client);
    exit 0;
  }
  close $client;
}

# Reads until $buf holds at least $n bytes; false when the peer is gone.
sub fill {
  my ($client, $buf, $n) = @_;
  while (length($$buf) < $n) {
    my $read = sysread($client, my $more, 65536);
    return 0 unless $read;
    $$buf .= $more;
  }
  return 1;
}

# Writes all of $data, however many calls it takes.
sub write_all {
  my ($client, $data) = @_;
  while (length $data) {
    my $written = syswrite($client, $data);
    return 0 unless defined $written;
    substr($data, 0, $written) = '';
  }
  return 1;
}

sub send_frame {
  my ($client, $opcode, $payload) = @_;
  my $len = length $payload;
  my $head = chr(0x80 | $opcode);
  if ($len < 126) { $head .= chr($len) }
  elsif ($len < 65536) { $head .= chr(126) . pack('n', $len) }
  else { $head .= chr(127) . pack('Q>', $len) }
  write_all($client, $head . $payload);
}

sub serve {
  my ($client) = @_;
  binmode $client;
  my $buf = '';
  until ($buf =~ /\r\n\r\n/) {
    my $read = sysread($client, my $more, 4096);
    return unless $read;
    $buf .= $more;
  }
  my $end = index($buf, "\r\n\r\n") + 4;
  my $head = substr($buf, 0, $end);
  $buf = substr($buf, $end);
  my ($key) = $head =~ /^Sec-WebSocket-Key:\s*(\S+)/mi;
  unless ($key) {
    my ($method, $path) = $head =~ /^(\S+) (\S+)/;
    my $body = '';
    if ($head =~ /^Content-Length:\s*(\d+)/mi) {
      my $length = $1;
      fill($client, \$buf, $length) or return;
      $body = substr($buf, 0, $length);
    } elsif ($head =~ /^Transfer-Encoding:\s*chunked/mi) {
      while (1) {
        until ($buf =~ /\r\n/) { fill($client, \$buf, length($buf) + 1) or return }
        my $line_end = index($buf, "\r\n");
        my $size = hex(substr($buf, 0, $line_end));
        fill($client, \$buf, $line_end + 2 + $size + 2) or return;
        $body .= substr($buf, $line_end + 2, $size);
        $buf = substr($buf, $line_end + 2 + $size + 2);
        last if $size == 0;
      }
    }
    my $answer = $path =~ m{^/_headers} ? $head : "$method $path\n$body";
    write_all($client, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
      . length($answer) . "\r\nConnection: close\r\n\r\n$answer");
    return;
  }
  my $accept = encode_base64(sha1($key . '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'), '');
  write_all($client, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
    . "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n");
  while (1) {
    fill($client, \$buf, 2) or return;
    my ($first, $second) = unpack('CC', $buf);
    my $opcode = $first & 0x0f;
    my $len = $second & 0x7f;
    my $offset = 2;
    if ($len == 126) { fill($client, \$buf, 4) or return; $len = unpack('n', substr($buf, 2, 2)); $offset = 4 }
    elsif ($len == 127) { fill($client, \$buf, 10) or return; $len = unpack('Q>', substr($buf, 2, 8)); $offset = 10 }
    my $mask = '';
    if ($second & 0x80) { fill($client, \$buf, $offset + 4) or return; $mask = substr($buf, $offset, 4); $offset += 4 }
    fill($client, \$buf, $offset + $len) or return;
    my $payload = substr($buf, $offset, $len);
    $buf = substr($buf, $offset + $len);
    $payload ^= substr($mask x (int($len / 4) + 1), 0, $len) if $mask ne '';
    if ($opcode == 8) { send_frame($client, 8, substr($payload, 0, 2)); return }
    elsif ($opcode == 9) { send_frame($client, 10, $payload) }
    elsif ($opcode == 1 || $opcode == 2) { send_frame($client, $opcode, $payload) }
  }
}
