import { isCrossSiteRequest } from './csrf.guard';

describe('isCrossSiteRequest', () => {
  const host = 'mc.example:3000';
  it.each([
    ['POST', { host, origin: 'http://mc.example:3000' }, false],
    ['POST', { host, origin: 'https://mc.example:3000' }, false],
    ['POST', { host, origin: 'https://evil.example' }, true],
    ['POST', { host, origin: 'http://mc.example:3001' }, true],
    ['POST', { host, origin: 'http://mc.example.evil.com:3000' }, true],
    ['POST', { host, origin: 'null' }, true],
    ['DELETE', { host, origin: 'https://evil.example' }, true],
    ['PUT', { host, origin: 'https://evil.example' }, true],
    ['PATCH', { host, origin: 'https://evil.example' }, true],
    ['GET', { host, origin: 'https://evil.example' }, false],
    ['HEAD', { host, origin: 'https://evil.example' }, false],
    ['POST', { host, referer: 'https://evil.example/form' }, true],
    ['POST', { host, referer: 'http://mc.example:3000/api/docs' }, false],
    ['POST', { host, origin: 'http://mc.example:3000', referer: 'https://evil.example/' }, false],
    ['POST', { host }, false],
    ['POST', { host: 'MC.EXAMPLE:3000', origin: 'http://mc.example:3000' }, false],
    ['POST', { origin: 'http://mc.example:3000' }, true],
  ])('%s with %j → %s', (method, headers, expected) => {
    expect(isCrossSiteRequest(method, headers)).toBe(expected);
  });
});
