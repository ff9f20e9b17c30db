import { IsString, MaxLength, MinLength } from 'class-validator';

export class LoginDto {
  /** @example admin */
  @IsString()
  @MinLength(1)
  @MaxLength(64)
  username: string;

  /** @example correct-horse-battery */
  @IsString()
  @MinLength(1)
  @MaxLength(1024)
  password: string;
}
