#!/usr/bin/perl
# A form handler without libraries: GET shows the form, POST (or GET with a
# query) echoes the decoded fields.  Reads exactly CONTENT_LENGTH bytes, or
# to EOF for a chunked request (which has no CONTENT_LENGTH).
use strict;
use warnings;

sub decode {
    my ($s) = @_;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
    return $s;
}

sub html {
    my ($s) = @_;
    $s =~ s/&/&amp;/g; $s =~ s/</&lt;/g; $s =~ s/>/&gt;/g; $s =~ s/"/&quot;/g;
    return $s;
}

my $method = $ENV{REQUEST_METHOD} || 'GET';
my $data = $ENV{QUERY_STRING} // '';
if ($method eq 'POST') {
    binmode STDIN;
    local $/;
    $data = defined $ENV{CONTENT_LENGTH} ? '' : <STDIN> // '';
    read(STDIN, $data, $ENV{CONTENT_LENGTH}) if defined $ENV{CONTENT_LENGTH};
}
my @fields = map { [ map { decode($_) } split(/=/, $_, 2) ] } grep { length } split /[&;]/, $data;

print "Content-Type: text/html; charset=utf-8\r\n\r\n";
print "<!DOCTYPE html>\n<html><head><title>form</title></head><body>\n";
print "<p>method: ", html($method), "</p>\n";
if (@fields) {
    print "<dl>\n";
    printf "<dt>%s</dt><dd>%s</dd>\n", html($_->[0]), html($_->[1] // '') for @fields;
    print "</dl>\n";
}
print <<'FORM';
<form method="post" action="">
<input name="name"> <input name="comment"> <input type="submit">
</form>
</body></html>
FORM
